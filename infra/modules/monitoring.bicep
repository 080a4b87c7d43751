// Log Analytics and workspace-based Application Insights. Local (key) authentication is off
// on both: the Function Apps send telemetry with their managed identities
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD and the Monitoring Metrics
// Publisher role, granted in access.bicep).

@description('Azure region.')
param location string

@description('Name part shared by the resources, e.g. dipedge-abc123.')
param nameSuffix string

@description('Days Log Analytics keeps logs.')
@minValue(30)
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${nameSuffix}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${nameSuffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output workspaceId string = workspace.id
output appInsightsName string = appInsights.name

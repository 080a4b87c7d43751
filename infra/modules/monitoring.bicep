// Log Analytics and workspace-based Application Insights. Local (key) authentication is off
// on both: the Function Apps send telemetry with their managed identities
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD and the Monitoring Metrics
// Publisher role, granted in access.bicep).

@description('Azure region.')
param location string

@description('Name part shared by the resources, e.g. dipedge-abc123.')
param nameSuffix string

@description('Days Log Analytics keeps logs searchable (interactive retention).')
@minValue(90)
@maxValue(730)
param retentionInDays int

@description('Days the audit-bearing tables keep logs in all (interactive, then long-term retention).')
@minValue(365)
@maxValue(4383)
param totalRetentionInDays int

// The tables that hold the audit trail, with their retention set explicitly (DSD002 Annex 1:
// audit logs of user activity and security events at least 3 months live, 12 archived):
//   AppTraces   - every dip-edge record: the `audit` records (credential submissions,
//                 imports, new PFX versions, with the caller), the webhook's rejections
//                 (security events), the monitor runs; the host's own traces
//   AppRequests / AppExceptions - the Functions host's invocations and failures
//   AZKVAuditLogs - Key Vault's own audit log (who read or wrote which secret), written
//                 there by the vault's resource-specific diagnostic setting (keyvault.bicep)
// The Functions host sends a Python record's message only, never a separate category, so
// the audit records cannot have a table of their own without a second ingestion path: the
// table they share is the one kept for the audit period.
var auditTables = [
  'AppTraces'
  'AppRequests'
  'AppExceptions'
  'AZKVAuditLogs'
]

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

resource tables 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = [for table in auditTables: {
  parent: workspace
  name: table
  properties: {
    plan: 'Analytics'
    retentionInDays: retentionInDays
    totalRetentionInDays: totalRetentionInDays
  }
}]

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

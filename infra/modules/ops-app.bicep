// The ops app: the credential API and the Certificate Admin's page (/api/portal), behind App
// Service authentication with Microsoft Entra ID, the events queue trigger (Key Vault and Storage events, delivered by Event Grid to a
// Storage queue) and the expiry monitor timer. Only those and health run here
// (AzureWebJobs.dip_webhook.Disabled).
//
// The identity may read and write the GlobalSign secrets (Key Vault Secrets Officer), consume
// the events queue, read and delete uploads, write reports and read the deployment package
// (access.bicep). It has no role on the inbox.

@description('Azure region.')
param location string

@description('Site name (globally unique).')
param name string

@description('The Elastic Premium plan.')
param planId string

@description('Instances kept running for this app (the queue trigger and timer need a running host).')
@minValue(1)
param alwaysReadyInstances int

@description('Name of the app\'s own host storage account (AzureWebJobsStorage).')
param hostStorageName string

@description('Replication of the host storage account.')
param hostStorageSku string

@description('Application Insights component receiving telemetry.')
param appInsightsName string

@description('Log Analytics workspace receiving FunctionAppLogs.')
param workspaceId string

@description('Blob URL of the deployment package both apps run (WEBSITE_RUN_FROM_PACKAGE).')
param packageUrl string

@description('dip-edge settings (shared/settings.py names) for this app, plus the identity-based EVENTS_STORAGE__* connection.')
param codeSettings object

@description('Application (client) ID of the Entra ID app registration that protects the credential API.')
param authClientId string

@description('Object IDs of the users, groups\' members or service principals allowed to call the credential API; empty: anyone holding a token for the API (then require user assignment on the enterprise application).')
param authAllowedPrincipalIds array

// The function this app must not run (the webhook app runs it).
var disabledFunctionSettings = {
  'AzureWebJobs.dip_webhook.Disabled': 'true'
}

// Host and platform settings: identity-based host storage, Entra ID telemetry, the package.
var platformSettings = {
  FUNCTIONS_EXTENSION_VERSION: '~4'
  FUNCTIONS_WORKER_RUNTIME: 'python'
  AzureWebJobsStorage__accountName: hostStorageName
  AzureWebJobsStorage__credential: 'managedidentity'
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  WEBSITE_RUN_FROM_PACKAGE: packageUrl
  WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: 'SystemAssigned'
}

var namedSettings = [for setting in items(union(platformSettings, codeSettings, disabledFunctionSettings)): {
  name: setting.key
  value: setting.value
}]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17:client certificates are the webhook app's gate; the credential API is protected by App Service authentication with Entra ID (authsettingsV2 below), which checkov does not link to the site
  // checkov:skip=CKV_AZURE_13:authentication is configured in the authsettingsV2 child resource below; checkov only looks for the legacy siteConfig.siteAuthEnabled
  // checkov:skip=CKV_AZURE_222:operators and pipelines call the credential API over the internet with Entra ID tokens; a private endpoint needs a virtual network this template does not deploy
  // checkov:skip=CKV_AZURE_212:numberOfWorkers does not apply to Elastic Premium; minimumElasticInstanceCount (alwaysReadyInstances) keeps instances running, raise it to 2 for failover
  name: name
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: planId
    reserved: true
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      linuxFxVersion: 'Python|3.13'
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      minimumElasticInstanceCount: alwaysReadyInstances
      healthCheckPath: '/api/health'
      // The connection string is not a credential here: local authentication is disabled,
      // so ingestion also needs the identity's Monitoring Metrics Publisher role.
      appSettings: concat(namedSettings, [
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
      ])
    }
  }
}

// App Service authentication: every request except the health probe needs an Entra ID token
// issued for this API; the function key the credential functions also require stays a second
// factor, not the only one.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov applies its web-app checks to every Microsoft.Web/sites/config child as if it were a site; the site above is what they are about.
  // checkov:skip=CKV_AZURE_13:this resource IS the App Service authentication (Entra ID) the check asks for
  // checkov:skip=CKV_AZURE_63:not a site - HTTP logs of the site go to Log Analytics through its diagnostic setting (FunctionAppLogs)
  // checkov:skip=CKV_AZURE_65:not a site - detailed error pages are a web-app (IIS) feature that Linux Function Apps do not serve
  // checkov:skip=CKV_AZURE_66:not a site - failed request tracing is a web-app (IIS) feature that Linux Function Apps do not serve
  // checkov:skip=CKV_AZURE_80:not a site - .NET Framework version does not apply to a Python app
  // checkov:skip=CKV_AZURE_88:not a site - and the apps deliberately run without Azure Files (keys disabled; run from package)
  // checkov:skip=CKV_AZURE_222:not a site - see the site's public network access reason above
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      excludedPaths: [
        '/api/health'
      ]
    }
    httpSettings: {
      requireHttps: true
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: authClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${authClientId}'
            authClientId
          ]
          defaultAuthorizationPolicy: {
            allowedPrincipals: {
              identities: authAllowedPrincipalIds
            }
          }
        }
      }
    }
  }
}

// Deployment goes through Entra ID (az CLI / pipelines), never basic-auth publishing profiles.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

module hostStorage 'host-storage.bicep' = {
  name: '${name}-host-storage'
  params: {
    location: location
    name: hostStorageName
    skuName: hostStorageSku
    appPrincipalId: site.identity.principalId
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: site
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName

// The webhook app: the public endpoint the DIP delivers to, behind mutual TLS.
//
// App Service ends TLS at its front end. With clientCertEnabled + clientCertMode 'Required'
// it refuses any connection that presents no client certificate and forwards the one
// presented, base64 DER, in X-ARR-ClientCert; it does not validate it - the app does (chain,
// identity rules, then the DIP message signature). No clientCertExclusionPaths: any
// exclusion (like 'OptionalInteractiveUser') makes the front end use TLS renegotiation,
// which fails POST bodies over 100 KB with 403 and rules out TLS 1.3. Event Grid cannot
// present a client certificate, which is why no event reaches this app: events go to a
// Storage queue that the ops app reads.
//
// Only dip_webhook and health run here (AzureWebJobs.<name>.Disabled for the rest). The
// identity may add blobs to the inbox container, send to the inbox queue and read the
// deployment package - nothing else (access.bicep); it has no Key Vault role at all.

@description('Azure region.')
param location string

@description('Site name (globally unique).')
param name string

@description('The Elastic Premium plan.')
param planId string

@description('Instances kept running for this app at all times (the DIP never meets a cold start).')
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

@description('dip-edge settings (shared/settings.py names) for this app.')
param codeSettings object

@description('Custom hostname the DIP calls, e.g. dip.example.com; empty: the default *.azurewebsites.net name only.')
param customHostname string

@description('Resource ID of the Key Vault holding the TLS certificate for customHostname.')
param tlsCertificateVaultId string

@description('Name of the Key Vault certificate for customHostname.')
param tlsCertificateName string

// The functions this app must not run (the ops app runs them).
var disabledFunctionSettings = {
  'AzureWebJobs.credentials_validate.Disabled': 'true'
  'AzureWebJobs.credentials.Disabled': 'true'
  'AzureWebJobs.events.Disabled': 'true'
  'AzureWebJobs.monitor.Disabled': 'true'
  'AzureWebJobs.portal.Disabled': 'true'
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
  // checkov:skip=CKV_AZURE_18:same reason as CKV_AZURE_67 (HTTP/2 off on the webhook app)
  // checkov:skip=CKV_AZURE_67:HTTP/2 stays off on the mTLS endpoint - the DIP posts single deliveries, HTTP/2 gains nothing there, and the client-certificate behaviour relied on was researched for HTTP/1.1 only
  // checkov:skip=CKV_AZURE_222:the webhook must be reachable by the DIP over the internet; mTLS (clientCertMode Required) is the gate
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
    clientCertEnabled: true
    clientCertMode: 'Required'
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      linuxFxVersion: 'Python|3.13'
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: false
      remoteDebuggingEnabled: false
      minimumElasticInstanceCount: alwaysReadyInstances
      preWarmedInstanceCount: 1
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

resource tlsCertificate 'Microsoft.Web/certificates@2024-04-01' = if (!empty(customHostname)) {
  name: '${name}-tls'
  location: location
  properties: {
    keyVaultId: tlsCertificateVaultId
    keyVaultSecretName: tlsCertificateName
    serverFarmId: planId
  }
}

resource hostnameBinding 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = if (!empty(customHostname)) {
  parent: site
  name: empty(customHostname) ? 'unused' : customHostname
  properties: {
    siteName: site.name
    hostNameType: 'Verified'
    customHostNameDnsRecordType: 'CName'
    sslState: 'SniEnabled'
    thumbprint: tlsCertificate.properties.thumbprint
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

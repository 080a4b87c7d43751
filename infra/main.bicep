// dip-edge: the participant's side of Elexon's DIP, deployed to one resource group.
//
//   webhook app  - public, mutual TLS Required, always warm; runs dip_webhook and health
//   ops app      - credential API behind Entra ID, events queue trigger, expiry monitor timer
//   Key Vault    - RBAC, purge protection; the GlobalSign secrets (ops app only)
//   Storage      - keyless; inbox, events queue (+ poison), uploads, reports, package
//   Event Grid   - Key Vault and Storage system topics -> events queue (managed identity)
//   Monitoring   - Log Analytics + Application Insights (Entra ID ingestion only); alert
//                  rules and a workbook over dip-edge's structured records
//
// Both apps run the same package (WEBSITE_RUN_FROM_PACKAGE, one blob) and differ only in
// settings: which functions are disabled, which storage and vault they are told about, and
// what their identities may touch (modules/access.bicep).
//
// Hosting plan: Elastic Premium (EP1), Linux, both apps on one plan.
//   - Client certificates: Microsoft documents clientCertEnabled/clientCertMode for App
//     Service plans Basic and above and for Premium Function Apps; Elastic Premium is that
//     documented path. Flex Consumption (FC1) accepts the same ARM properties (Terraform
//     exposes them), but no Microsoft document confirms how it treats client certificates,
//     and the webhook's security rests on 'Required' being enforced - so not Flex until that
//     is verified in a real subscription.
//   - Always ready: per-app always-ready instances (minimumElasticInstanceCount) plus a
//     pre-warmed instance keep the webhook out of cold starts, which the DIP's response-time
//     rules need. Flex offers always-ready too; Consumption (Y1) does not.
//   - No Azure Files: Elastic Premium normally mounts the code from an Azure Files share,
//     which needs a storage account key. Shared keys are disabled here, so the apps are
//     created without WEBSITE_CONTENTAZUREFILECONNECTIONSTRING / WEBSITE_CONTENTSHARE and
//     run the package from a blob URL fetched with their managed identity
//     (WEBSITE_RUN_FROM_PACKAGE + WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID). Documented
//     in "Storage considerations for Azure Functions" (Create an app without Azure Files:
//     leave both settings out of the template, run from a package URL; Microsoft warns that
//     scale-out "could be limited" on Elastic Premium without Azure Files) and "Run your app
//     from a ZIP package" (SystemAssigned = the app's own identity, which needs Storage Blob
//     Data Reader on the package). With an external package URL the triggers must be synced
//     after each publish (README).
//   - One plan for both apps keeps one always-billed instance pool; give the ops app its own
//     plan if its load must never share instances with the webhook.
targetScope = 'resourceGroup'

@description('Short name in every resource name: 3-8 lowercase letters and digits.')
@minLength(3)
@maxLength(8)
param baseName string = 'dipedge'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Elastic Premium plan size.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param planSku string = 'EP1'

@description('Largest number of instances the plan scales out to.')
@minValue(1)
@maxValue(100)
param maximumElasticWorkerCount int = 10

@description('Webhook app instances kept running at all times.')
@minValue(1)
param webhookAlwaysReadyInstances int = 1

@description('Ops app instances kept running at all times.')
@minValue(1)
param opsAlwaysReadyInstances int = 1

@description('Replication of the data storage account (inbox, events, uploads, reports).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_ZRS'

@description('Replication of each app\'s host storage account (keys, locks, timer status).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param hostStorageSku string = 'Standard_LRS'

@description('Days Log Analytics keeps logs searchable (interactive retention; at least the 3 months live DSD002 asks of audit logs).')
@minValue(90)
@maxValue(730)
param logRetentionDays int = 90

@description('Days the tables holding the audit trail keep logs in all, long-term retention included (at least the 12 months DSD002 asks).')
@minValue(365)
@maxValue(4383)
param logTotalRetentionDays int = 365

@description('Email addresses the alert rules notify.')
param alertEmails array = []

@description('Optional webhook the alert rules notify (common alert schema); empty: none.')
@secure()
param alertWebhookUrl string = ''

@description('Percentage of webhook deliveries answered 5xx in 15 minutes that alerts.')
@minValue(1)
@maxValue(100)
param alertFailedPercent int = 5

@description('Fewest deliveries in 15 minutes for the 5xx rate to count.')
@minValue(1)
param alertMinDeliveries int = 10

@description('Deliveries rejected with one code in 15 minutes that alert.')
@minValue(0)
param alertRejections int = 10

@description('Minutes GlobalSign Atlas or Key Vault must keep failing before the outage alert fires.')
@minValue(5)
@maxValue(360)
param alertOutageMinutes int = 15

@description('Hours without an expiry monitor run that alert (it runs daily).')
@minValue(25)
@maxValue(47)
param alertMonitorSilenceHours int = 26

@description('Key Vault public network access: Enabled (RBAC-gated) or Disabled (private endpoint only; not deployed here).')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Key Vault firewall default. Deny needs keyVaultAllowedIpRanges that include the ops app\'s outbound addresses.')
@allowed([
  'Allow'
  'Deny'
])
param keyVaultNetworkDefaultAction string = 'Allow'

@description('Public IP ranges (CIDR) allowed through the Key Vault firewall when its default is Deny.')
param keyVaultAllowedIpRanges array = []

@description('Application (client) ID of the Entra ID app registration protecting the credential API (create it first; see README).')
param opsAuthClientId string

@description('Object IDs allowed to call the credential API; empty: any holder of a token for it.')
param opsAuthAllowedPrincipalIds array = []

@description('Custom hostname the DIP calls (CNAME to the webhook app, asuid TXT record in place); empty: the default azurewebsites.net name.')
param customHostname string = ''

@description('Name of the certificate for customHostname, imported into this deployment\'s Key Vault first.')
param tlsCertificateName string = ''

@description('Object ID of the "Microsoft Azure App Service" service principal (az ad sp show --id abfa0a7c-a6b6-4736-8310-5855508787cd --query id); needed only with customHostname.')
param appServiceObjectId string = ''

@description('Blob name of the deployment package in the packages container.')
param packageBlobName string = 'dip-edge.zip'

@description('Roots the DIP\'s client certificate must chain to (inline PEM), e.g. the DIP-PKI CA published by the DIP Manager; empty: the bundled GlobalSign roots.')
param dipClientTrustAnchors string = ''

@description('Extra intermediates for the client certificate chain (inline PEM); empty: none.')
param dipClientIntermediates string = ''

@description('Required. Identity rules (inline JSON array) the DIP\'s client certificate must match, e.g. the output of `dip-edge identity-rule <DIP client certificate from the DIP Manager>`. Without rules the webhook refuses every delivery; \'any\' accepts any certificate that chains (test environments only).')
@minLength(3)
param dipClientIdentities string

@description('Roots for the DIP signing certificate (inline PEM); empty: the client certificate\'s.')
param dipSignerTrustAnchors string = ''

@description('Intermediates for the DIP signing certificate (inline PEM); empty: the client certificate\'s.')
param dipSignerIntermediates string = ''

@description('Required. Identity rules (inline JSON array) the DIP\'s message-signing certificate must match, e.g. the output of `dip-edge identity-rule <DIP signing certificate from the DIP Manager>` (the same rules as the client\'s if the DIP signs with its TLS certificate).')
@minLength(3)
param dipSignerIdentities string

@description('Key Vault secret or certificate holding the participant\'s DIP signing/mTLS certificate, for the expiry monitor; empty: not watched.')
param signingCertificateSecretName string = ''

@description('Extra issuers the PFX checker accepts (inline PEM); empty: GlobalSign only.')
param pfxTrustedIssuers string = ''

@description('Any dip-edge setting by its name (as in local.settings.example.json), applied to both apps last.')
param settingOverrides object = {}

var suffix = uniqueString(resourceGroup().id)
var nameSuffix = '${baseName}-${suffix}'
var dataStorageName = take(toLower('st${baseName}${suffix}'), 24)

// Containers and queues (their names are also the apps' settings below).
var inboxContainerName = 'dip-inbox'
var inboxQueueName = 'dip-inbox'
var inboxTableName = 'dipinbox'
var eventsQueueName = 'dip-edge-events'
var uploadsContainerName = 'pfx-uploads'
var reportsContainerName = 'validation-reports'
var packagesContainerName = 'function-packages'
var deadLetterContainerName = 'eventgrid-deadletters'

// dip-edge settings (shared/settings.py) both apps read. EVENTS_QUEUE and MONITOR_SCHEDULE
// are binding expressions (%NAME%) that the host resolves for every declared function,
// disabled or not. The DIP certificate settings are here because the monitor watches them too.
var sharedSettings = {
  DIP_EDGE_STATE_DIR: '/tmp/dip-edge'
  AIA_FETCH: 'true'
  AIA_ALLOWED_HOSTS: 'secure.globalsign.com,secure.globalsign.net'
  EVENTS_QUEUE: eventsQueueName
  MONITOR_SCHEDULE: '0 0 6 * * *'
  EXPIRY_WARNING_DAYS: '30'
  EXPIRY_ERROR_DAYS: '7'
  EXPIRY_WARNING_FRACTION: '0.3'
  EXPIRY_ERROR_FRACTION: '0.05'
  AZURE_SDK_LOG_LEVEL: 'warning'
  DIP_CLIENT_TRUST_ANCHORS: dipClientTrustAnchors
  DIP_CLIENT_INTERMEDIATES: dipClientIntermediates
  DIP_CLIENT_IDENTITIES: dipClientIdentities
  DIP_CLIENT_EKU: 'client'
  DIP_SIGNER_TRUST_ANCHORS: dipSignerTrustAnchors
  DIP_SIGNER_INTERMEDIATES: dipSignerIntermediates
  DIP_SIGNER_IDENTITIES: dipSignerIdentities
}

// Only the webhook app: the inbox and the signature checks. No Key Vault URL - it has no
// secrets to read (SECRET_STORE then defaults to local, which it never uses).
var webhookOnlySettings = {
  INBOX_BACKEND: 'blob'
  INBOX_STORAGE: storage.outputs.blobEndpoint
  INBOX_CONTAINER: inboxContainerName
  INBOX_QUEUE: inboxQueueName
  INBOX_TABLE: inboxTableName
  // The whole store of one delivery, retries included; past it 503 inbox.unavailable.
  INBOX_TIMEOUT_SECONDS: '10'
  DIP_SIGNATURE_MODE: 'required'
  DIP_SIGNATURE_MAX_SKEW_SECONDS: '300'
  // The signed URL is rebuilt from the name the DIP calls; empty: taken from the request.
  DIP_PUBLIC_BASE_URL: empty(customHostname) ? '' : 'https://${customHostname}'
  WEBHOOK_MAX_BODY_BYTES: '4194304'
  // Read by dip-edge serve only (the local front door); App Service's front end has its own.
  SERVE_HEAD_TIMEOUT_SECONDS: '30'
  SERVE_BODY_TIMEOUT_SECONDS: '60'
  SERVE_IDLE_TIMEOUT_SECONDS: '60'
  SERVE_MAX_CONNECTIONS: '1000'
}

// Only the ops app: Key Vault, GlobalSign Atlas, events, uploads, reports, the monitor.
var opsOnlySettings = {
  SECRET_STORE: 'keyvault'
  KEY_VAULT_URL: keyVault.outputs.uri
  SECRET_NAME_API_KEY: 'globalsign-api-key'
  SECRET_NAME_API_SECRET: 'globalsign-api-secret'
  SECRET_NAME_PFX: 'globalsign-pfx'
  SECRET_NAME_CREDENTIAL_SET: 'globalsign-credential-set'
  // Certificates the expiry monitor watches besides the PFX; empty: not watched.
  SECRET_NAME_SIGNING_CERT: signingCertificateSecretName
  SECRET_NAME_TLS_CERT: empty(customHostname) ? '' : tlsCertificateName
  KEY_VAULT_MAX_RETRIES: '3'
  ATLAS_BASE_URL: 'https://emea.api.hvca.globalsign.com:8443/v2'
  // Empty: the system trust store verifies GlobalSign's public server certificate.
  ATLAS_CA_BUNDLE: ''
  ATLAS_TIMEOUT_SECONDS: '15'
  ATLAS_MAX_RETRIES: '3'
  ATLAS_RETRY_BACKOFF_SECONDS: '1'
  PFX_TRUSTED_ISSUERS: pfxTrustedIssuers
  CREDENTIALS_MAX_BODY_BYTES: '2097152'
  // Deliberately empty: a non-empty EVENTS_STORAGE would be read by the Functions host as a
  // connection string. The identity-based connection is the two __ settings below.
  EVENTS_STORAGE: ''
  EVENTS_STORAGE__queueServiceUri: storage.outputs.queueEndpoint
  EVENTS_STORAGE__blobServiceUri: storage.outputs.blobEndpoint
  REPORTS_CONTAINER: reportsContainerName
  UPLOADS_CONTAINER: uploadsContainerName
  UPLOAD_IMPORT_TO_KEY_VAULT: 'false'
  UPLOAD_KEEP_BLOB: 'false'
  MONITOR_REPROVE_ATLAS: 'false'
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    nameSuffix: nameSuffix
    retentionInDays: logRetentionDays
    totalRetentionInDays: logTotalRetentionDays
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    nameSuffix: nameSuffix
    workspaceId: monitoring.outputs.workspaceId
    emails: alertEmails
    webhookUrl: alertWebhookUrl
    failedPercent: alertFailedPercent
    minDeliveries: alertMinDeliveries
    rejections: alertRejections
    outageMinutes: alertOutageMinutes
    monitorSilenceHours: alertMonitorSilenceHours
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    workspaceId: monitoring.outputs.workspaceId
    displayName: 'dip-edge (${nameSuffix})'
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: dataStorageName
    skuName: storageSku
    deleteRetentionDays: 7
    containerNames: [
      inboxContainerName
      uploadsContainerName
      reportsContainerName
      packagesContainerName
      deadLetterContainerName
    ]
    queueNames: [
      inboxQueueName
      eventsQueueName
      '${eventsQueueName}-poison'
    ]
    tableNames: [
      inboxTableName
    ]
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: take('kv${baseName}${suffix}', 24)
    publicNetworkAccess: keyVaultPublicNetworkAccess
    networkDefaultAction: keyVaultNetworkDefaultAction
    allowedIpRanges: keyVaultAllowedIpRanges
    workspaceId: monitoring.outputs.workspaceId
    tlsCertificateName: empty(customHostname) ? '' : tlsCertificateName
    appServiceObjectId: appServiceObjectId
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225:zone redundancy is not available in every region and triples the minimum billed instances; enable it where the participant's availability policy needs it
  name: 'plan-${nameSuffix}'
  location: location
  kind: 'elastic'
  sku: {
    name: planSku
    tier: 'ElasticPremium'
  }
  properties: {
    reserved: true
    maximumElasticWorkerCount: maximumElasticWorkerCount
  }
}

var packageUrl = '${storage.outputs.blobEndpoint}${packagesContainerName}/${packageBlobName}'

module webhookApp 'modules/webhook-app.bicep' = {
  name: 'webhook-app'
  params: {
    location: location
    name: 'func-${nameSuffix}-webhook'
    planId: plan.id
    alwaysReadyInstances: webhookAlwaysReadyInstances
    hostStorageName: take(toLower('stw${baseName}${suffix}'), 24)
    hostStorageSku: hostStorageSku
    appInsightsName: monitoring.outputs.appInsightsName
    workspaceId: monitoring.outputs.workspaceId
    packageUrl: packageUrl
    codeSettings: union(sharedSettings, webhookOnlySettings, settingOverrides)
    customHostname: customHostname
    tlsCertificateVaultId: keyVault.outputs.id
    tlsCertificateName: tlsCertificateName
  }
}

module opsApp 'modules/ops-app.bicep' = {
  name: 'ops-app'
  params: {
    location: location
    name: 'func-${nameSuffix}-ops'
    planId: plan.id
    alwaysReadyInstances: opsAlwaysReadyInstances
    hostStorageName: take(toLower('sto${baseName}${suffix}'), 24)
    hostStorageSku: hostStorageSku
    appInsightsName: monitoring.outputs.appInsightsName
    workspaceId: monitoring.outputs.workspaceId
    packageUrl: packageUrl
    codeSettings: union(sharedSettings, opsOnlySettings, settingOverrides)
    authClientId: opsAuthClientId
    authAllowedPrincipalIds: opsAuthAllowedPrincipalIds
  }
}

module access 'modules/access.bicep' = {
  name: 'access'
  params: {
    storageAccountName: storage.outputs.name
    vaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    webhookPrincipalId: webhookApp.outputs.principalId
    opsPrincipalId: opsApp.outputs.principalId
    inboxContainerName: inboxContainerName
    inboxQueueName: inboxQueueName
    inboxTableName: inboxTableName
    eventsQueueName: eventsQueueName
    uploadsContainerName: uploadsContainerName
    reportsContainerName: reportsContainerName
    packagesContainerName: packagesContainerName
  }
}

module events 'modules/events.bicep' = {
  name: 'events'
  params: {
    location: location
    nameSuffix: nameSuffix
    vaultName: keyVault.outputs.name
    storageAccountName: storage.outputs.name
    eventsQueueName: eventsQueueName
    uploadsContainerName: uploadsContainerName
    deadLetterContainerName: deadLetterContainerName
  }
}

@description('The URL to register with the DIP as the webhook (POST; append /{channel} if used).')
output webhookUrl string = 'https://${empty(customHostname) ? webhookApp.outputs.defaultHostName : customHostname}/api/webhooks/dip'

@description('Base URL of the credential API (Entra ID token required).')
output opsUrl string = 'https://${opsApp.outputs.defaultHostName}/api'

@description('URI of the Key Vault holding the GlobalSign credentials.')
output vaultUri string = keyVault.outputs.uri

@description('The data storage account (uploads, reports, inbox, package).')
output storageAccountName string = storage.outputs.name

@description('Where to upload the deployment package both apps run.')
output packageUrl string = packageUrl

@description('Function App names, for publishing and restarting.')
output webhookAppName string = webhookApp.outputs.name

@description('Function App names, for publishing and restarting.')
output opsAppName string = opsApp.outputs.name

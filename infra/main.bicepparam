// Parameters for main.bicep. Deploy with:
//   export DIP_EDGE_OPS_CLIENT_ID=<application (client) ID of the credential API's app registration>
//   az deployment group create -g <resource-group> -f infra/main.bicep -p infra/main.bicepparam
// Values shown are the template's defaults, written out so a review sees every choice.
using 'main.bicep'

param baseName = 'dipedge'

// Hosting: Elastic Premium, one plan for both apps, the webhook always warm.
param planSku = 'EP1'
param maximumElasticWorkerCount = 10
param webhookAlwaysReadyInstances = 1
param opsAlwaysReadyInstances = 1

// Storage replication (data account; each app's host account).
param storageSku = 'Standard_ZRS'
param hostStorageSku = 'Standard_LRS'

param logRetentionDays = 90

// Key Vault network: reachable, RBAC-gated. Deny + ranges once the ops app's outbound
// addresses are known (az functionapp show --query possibleOutboundIpAddresses).
param keyVaultPublicNetworkAccess = 'Enabled'
param keyVaultNetworkDefaultAction = 'Allow'
param keyVaultAllowedIpRanges = []

// The credential API: Entra ID app registration (created beforehand; see README) and who may call it.
param opsAuthClientId = readEnvironmentVariable('DIP_EDGE_OPS_CLIENT_ID')
param opsAuthAllowedPrincipalIds = []

// Custom hostname for the webhook (second deployment, after the certificate is in the vault
// and DNS has the CNAME and asuid TXT records). Empty: https://<app>.azurewebsites.net.
param customHostname = ''
param tlsCertificateName = ''
param appServiceObjectId = readEnvironmentVariable('DIP_EDGE_APP_SERVICE_OBJECT_ID', '')

param packageBlobName = 'dip-edge.zip'

// The DIP's certificates (inline PEM / JSON). Empty trust anchors: the bundled GlobalSign
// roots. Empty identities: any certificate that chains is accepted (the app logs a warning) -
// pin the DIP's certificate with the subject / SPKI published by the DIP Manager, e.g.
//   '[{"common_name": "<DIP certificate CN>", "spki_sha256": "<hex>"}]'
param dipClientTrustAnchors = ''
param dipClientIntermediates = ''
param dipClientIdentities = ''
param dipSignerTrustAnchors = ''
param dipSignerIntermediates = ''
param dipSignerIdentities = ''

// The participant's own DIP signing/mTLS certificate in Key Vault, for the expiry monitor.
param signingCertificateSecretName = ''

// Extra issuers the PFX checker accepts (a private or test CA); empty: GlobalSign only.
param pfxTrustedIssuers = ''

// Any other dip-edge setting by name, e.g. { EXPIRY_WARNING_DAYS: '45', UPLOAD_IMPORT_TO_KEY_VAULT: 'true' }.
param settingOverrides = {}

// Parameters for main.bicep. Deploy with:
//   export DIP_EDGE_OPS_CLIENT_ID=<application (client) ID of the credential API's app registration>
//   export DIP_EDGE_CLIENT_IDENTITIES=... DIP_EDGE_SIGNER_IDENTITIES=...   (see below)
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

// Logs: 90 days searchable; the audit-bearing tables (AppTraces, AppRequests, AppExceptions,
// AZKVAuditLogs) 365 days in all (DSD002 Annex 1: 3 months live, 12 months archived).
param logRetentionDays = 90
param logTotalRetentionDays = 365

// Alerts (README "Telemetry"): who is told, and the thresholds.
param alertEmails = []
param alertWebhookUrl = readEnvironmentVariable('DIP_EDGE_ALERT_WEBHOOK_URL', '')
param alertFailedPercent = 5
param alertMinDeliveries = 10
param alertRejections = 10
param alertOutageMinutes = 15
param alertMonitorSilenceHours = 26

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
// roots; the DIP's certificates may chain to the DIP-PKI's own CA instead - take it from the
// DIP Manager and paste its PEM here. The identity rules are required (the webhook refuses
// every delivery without them): make them from the certificates the DIP Manager publishes,
//   export DIP_EDGE_CLIENT_IDENTITIES="$(dip-edge identity-rule dip-client.pem)"
//   export DIP_EDGE_SIGNER_IDENTITIES="$(dip-edge identity-rule dip-signing.pem)"
// or write the JSON here, e.g. '[{"subject": "CN=...,O=...", "issuer_subject": "CN=...,O=..."}]'.
param dipClientTrustAnchors = ''
param dipClientIntermediates = ''
param dipClientIdentities = readEnvironmentVariable('DIP_EDGE_CLIENT_IDENTITIES')
param dipSignerTrustAnchors = ''
param dipSignerIntermediates = ''
param dipSignerIdentities = readEnvironmentVariable('DIP_EDGE_SIGNER_IDENTITIES')

// The participant's own DIP signing/mTLS certificate in Key Vault, for the expiry monitor.
param signingCertificateSecretName = ''

// Extra issuers the PFX checker accepts (a private or test CA); empty: GlobalSign only.
param pfxTrustedIssuers = ''

// Any other dip-edge setting by name, e.g. { EXPIRY_WARNING_DAYS: '45', UPLOAD_IMPORT_TO_KEY_VAULT: 'true' }.
param settingOverrides = {}

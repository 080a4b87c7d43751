// The Key Vault holding the GlobalSign API key, API secret and Atlas PFX (written by the ops
// app) and, optionally, the webhook's TLS certificate. Access is Azure RBAC only
// (enableRbacAuthorization), deleted secrets stay recoverable for 90 days and cannot be purged
// early (purge protection). Data-plane roles for the apps are granted in access.bicep.

@description('Azure region.')
param location string

@description('Vault name (3-24 letters, digits and dashes).')
param name string

@description('Enabled: reachable over the internet (still RBAC-gated; narrow with networkDefaultAction/allowedIpRanges). Disabled: private endpoint only - the apps then need VNet integration and a private endpoint, not deployed here.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

@description('Firewall default for public access. Deny needs allowedIpRanges that include the ops app\'s outbound addresses.')
@allowed([
  'Allow'
  'Deny'
])
param networkDefaultAction string

@description('Public IP ranges (CIDR) allowed through the vault firewall when networkDefaultAction is Deny.')
param allowedIpRanges array

@description('Log Analytics workspace receiving the vault\'s audit logs.')
param workspaceId string

@description('Name of the Key Vault certificate bound to the webhook\'s custom hostname; empty: no binding.')
param tlsCertificateName string

@description('Object ID of the "Microsoft Azure App Service" service principal in this tenant (app ID abfa0a7c-a6b6-4736-8310-5855508787cd); needed only with tlsCertificateName.')
param appServiceObjectId string

// Built-in role: Key Vault Certificate User.
var keyVaultCertificateUser = 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba'

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' = {
  // checkov:skip=CKV_AZURE_109:the firewall default is the networkDefaultAction parameter (Allow by default, because the Elastic Premium apps have no fixed egress without a virtual network); every request still needs an Entra ID token and an RBAC role
  // checkov:skip=CKV_AZURE_189:public network access is the publicNetworkAccess parameter; Disabled needs private endpoints and VNet integration, which this template does not deploy
  name: name
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: networkDefaultAction
      bypass: 'AzureServices'
      ipRules: [for range in allowedIpRanges: {
        value: range
      }]
    }
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    // Resource-specific table AZKVAuditLogs (retention set in monitoring.bicep), not the
    // shared AzureDiagnostics.
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'audit'
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

// The App Service platform (not the webhook app's identity) imports the TLS certificate.
// The role is scoped to that certificate's secret, so the platform cannot read the
// GlobalSign secrets stored beside it. Microsoft's doc ("Import a certificate from Key
// Vault") grants Key Vault Certificate User on the whole vault, and its access-policy
// variant needs certificate Get as well as secret Get: if the import is refused, the
// platform also reads /certificates/<name>, which this secret-scoped role does not cover -
// then use a separate vault for TLS certificates with the role on that vault (README,
// "What only Azure can show"). (The placeholder name keeps the role assignment's
// scope a well-formed resource ID even when the condition is false.)
resource tlsCertificateSecret 'Microsoft.KeyVault/vaults/secrets@2026-02-01' existing = if (!empty(tlsCertificateName)) {
  parent: vault
  name: empty(tlsCertificateName) ? 'unused' : tlsCertificateName
}

resource appServiceReadsTlsCertificate 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(tlsCertificateName)) {
  name: guid(vault.id, tlsCertificateName, appServiceObjectId, keyVaultCertificateUser)
  scope: tlsCertificateSecret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificateUser)
    principalId: appServiceObjectId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri

// One Function App's own host storage (AzureWebJobsStorage): function keys, timer schedule
// status and singleton locks. Each app gets its own account so neither can read the other's
// keys or locks; the app's identity is Storage Blob Data Owner here (what the Functions host
// needs for an identity-based AzureWebJobsStorage) and has no role on any other account.

@description('Azure region.')
param location string

@description('Storage account name (3-24 lowercase letters and digits).')
param name string

@description('Replication of the host account.')
param skuName string

@description('Principal (object) ID of the Function App identity that owns this account.')
param appPrincipalId string

var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43:the name is take(toLower(...), 24) of the base name and a unique suffix, valid by construction; checkov cannot evaluate the expression
  // checkov:skip=CKV_AZURE_59:the Function App (Elastic Premium, no virtual network here) reaches its host storage over the public endpoint; keys are disabled, so every request needs the app's Entra ID token
  // checkov:skip=CKV_AZURE_35:same reason as CKV_AZURE_59 - a deny-by-default firewall needs VNet integration and private endpoints, which this template does not deploy
  // checkov:skip=CKV_AZURE_206:replication is the skuName parameter; host storage holds only keys, locks and timer status the host recreates
  name: name
  location: location
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource hostOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, appPrincipalId, storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name

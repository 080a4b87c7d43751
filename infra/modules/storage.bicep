// The data storage account: the DIP inbox (container, index table and queue), the events queue Event Grid
// writes to (and its poison queue), the uploads and reports containers, the deployment
// package and Event Grid's dead letters. Keys are off (allowSharedKeyAccess: false): every
// client authenticates with Microsoft Entra ID, and each role is granted on one container or
// queue (access.bicep), never on the account.

@description('Azure region.')
param location string

@description('Storage account name (3-24 lowercase letters and digits).')
param name string

@description('Replication, e.g. Standard_ZRS in regions with zones, Standard_GRS for a second region.')
param skuName string

@description('Blob containers to create.')
param containerNames array

@description('Queues to create.')
param queueNames array

@description('Tables to create.')
param tableNames array

@description('Days deleted blobs and containers stay recoverable.')
param deleteRetentionDays int

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43:the name is take(toLower(...), 24) of the base name and a unique suffix, valid by construction; checkov cannot evaluate the expression
  // checkov:skip=CKV_AZURE_59:the Function Apps (Elastic Premium, no virtual network here) and Event Grid reach the account over its public endpoint; keys are disabled, so every request needs an Entra ID token and a role on one container or queue
  // checkov:skip=CKV_AZURE_35:same reason as CKV_AZURE_59 - a deny-by-default firewall needs VNet integration and private endpoints, which this template does not deploy
  // checkov:skip=CKV_AZURE_206:replication is the skuName parameter (default Standard_ZRS); checkov reads only the literal
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
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: deleteRetentionDays
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
  }
}]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {}
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
  properties: {}
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {}
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
  properties: {}
}]

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue

// Who may do what: every data-plane role the two Function Apps hold, in one place.
// Storage roles are granted on one container, queue or table, never on the account; the Key Vault
// role goes to the ops app only. (Each app's host storage role is in host-storage.bicep;
// Event Grid's roles are in events.bicep.)

@description('The data storage account.')
param storageAccountName string

@description('The Key Vault.')
param vaultName string

@description('The Application Insights component.')
param appInsightsName string

@description('Principal (object) ID of the webhook app\'s identity.')
param webhookPrincipalId string

@description('Principal (object) ID of the ops app\'s identity.')
param opsPrincipalId string

@description('Inbox blob container.')
param inboxContainerName string

@description('Inbox queue.')
param inboxQueueName string

@description('Inbox index table (transaction IDs).')
param inboxTableName string

@description('Events queue (Event Grid writes, the ops app reads).')
param eventsQueueName string

@description('Uploads container (pipelines drop PFX files to validate).')
param uploadsContainerName string

@description('Reports container (validation reports).')
param reportsContainerName string

@description('Container holding the deployment package both apps run.')
param packagesContainerName string

// Built-in role definition IDs (the same in every tenant).
var roles = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var containerGrants = [
  // The webhook stores each delivery (write-once blobs) before acknowledging it.
  {
    principalId: webhookPrincipalId
    roleId: roles.storageBlobDataContributor
    container: inboxContainerName
  }
  {
    principalId: webhookPrincipalId
    roleId: roles.storageBlobDataReader
    container: packagesContainerName
  }
  // The ops app reads an uploaded PFX and deletes it once handled.
  {
    principalId: opsPrincipalId
    roleId: roles.storageBlobDataContributor
    container: uploadsContainerName
  }
  {
    principalId: opsPrincipalId
    roleId: roles.storageBlobDataContributor
    container: reportsContainerName
  }
  {
    principalId: opsPrincipalId
    roleId: roles.storageBlobDataReader
    container: packagesContainerName
  }
]

var queueGrants = [
  // The webhook only sends (tells downstream a message is stored); it cannot read the queue.
  {
    principalId: webhookPrincipalId
    roleId: roles.storageQueueDataMessageSender
    queue: inboxQueueName
  }
  // The queue trigger reads and deletes messages, and moves failing ones to <queue>-poison
  // (the Functions host creates-if-missing both queues, which needs Contributor).
  {
    principalId: opsPrincipalId
    roleId: roles.storageQueueDataContributor
    queue: eventsQueueName
  }
  {
    principalId: opsPrincipalId
    roleId: roles.storageQueueDataContributor
    queue: '${eventsQueueName}-poison'
  }
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for grant in containerGrants: {
  name: '${storageAccountName}/default/${grant.container}'
}]

resource containerRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (grant, i) in containerGrants: {
  name: guid(account.id, grant.container, grant.principalId, grant.roleId)
  scope: containers[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: grant.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [for grant in queueGrants: {
  name: '${storageAccountName}/default/${grant.queue}'
}]

resource queueRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (grant, i) in queueGrants: {
  name: guid(account.id, grant.queue, grant.principalId, grant.roleId)
  scope: queues[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: grant.principalId
    principalType: 'ServicePrincipal'
  }
}]

var tableGrants = [
  // The webhook indexes each message by transaction ID (create, read; never deletes).
  {
    principalId: webhookPrincipalId
    roleId: roles.storageTableDataContributor
    table: inboxTableName
  }
]

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [for grant in tableGrants: {
  name: '${storageAccountName}/default/${grant.table}'
}]

resource tableRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (grant, i) in tableGrants: {
  name: guid(account.id, 'table', grant.table, grant.principalId, grant.roleId)
  scope: tables[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.roleId)
    principalId: grant.principalId
    principalType: 'ServicePrincipal'
  }
}]

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: vaultName
}

// Read and write the GlobalSign API key, API secret and PFX; tag versions with results.
resource opsSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, opsPrincipalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: opsPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Telemetry with Entra ID instead of the (disabled) instrumentation key.
resource telemetryPublishers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in [
  webhookPrincipalId
  opsPrincipalId
]: {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Event Grid: system topics on the Key Vault and on the data storage account, each with its
// own managed identity, delivering the events the ops app handles to the events queue.
// Storage-queue delivery, not webhooks: Event Grid cannot present a client certificate, and
// a queue keeps every event until the ops app has handled it (failing ones end in
// <queue>-poison). Events Event Grid cannot deliver at all are dead-lettered to a container.

@description('Azure region (system topics live in their source\'s region).')
param location string

@description('Name part shared by the resources.')
param nameSuffix string

@description('The Key Vault whose secret and certificate events are delivered.')
param vaultName string

@description('The data storage account: source of upload events and home of the events queue.')
param storageAccountName string

@description('Events queue the ops app reads.')
param eventsQueueName string

@description('Uploads container whose BlobCreated events are delivered.')
param uploadsContainerName string

@description('Container receiving events Event Grid could not deliver.')
param deadLetterContainerName string

var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

// The Key Vault event types the events function handles.
var keyVaultEventTypes = [
  'Microsoft.KeyVault.SecretNewVersionCreated'
  'Microsoft.KeyVault.CertificateNewVersionCreated'
  'Microsoft.KeyVault.SecretNearExpiry'
  'Microsoft.KeyVault.CertificateNearExpiry'
  'Microsoft.KeyVault.SecretExpired'
  'Microsoft.KeyVault.CertificateExpired'
]

resource vault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: vaultName
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource eventsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  name: '${storageAccountName}/default/${eventsQueueName}'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${storageAccountName}/default/${deadLetterContainerName}'
}

resource vaultTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-kv-${nameSuffix}'
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource storageTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-st-${nameSuffix}'
  location: location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Each topic may send to the events queue and write dead letters - nothing else.
// (Role assignment names must be known before deployment, so they use the topic's
// resource ID, not its identity's principal ID.)
resource vaultTopicSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, vaultTopic.id, storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
    principalId: vaultTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageTopicSends 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(eventsQueue.id, storageTopic.id, storageQueueDataMessageSender)
  scope: eventsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
    principalId: storageTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultTopicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, vaultTopic.id, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: vaultTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageTopicDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, storageTopic.id, storageBlobDataContributor)
  scope: deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: storageTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: vaultTopic
  name: 'to-events-queue'
  dependsOn: [
    vaultTopicSends
    vaultTopicDeadLetters
  ]
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: keyVaultEventTypes
    }
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: account.id
          queueName: eventsQueueName
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: account.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

resource uploadEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: storageTopic
  name: 'uploads-to-events-queue'
  dependsOn: [
    storageTopicSends
    storageTopicDeadLetters
  ]
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${uploadsContainerName}/'
    }
    deliveryWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      destination: {
        endpointType: 'StorageQueue'
        properties: {
          resourceId: account.id
          queueName: eventsQueueName
          queueMessageTimeToLiveInSeconds: -1
        }
      }
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: account.id
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

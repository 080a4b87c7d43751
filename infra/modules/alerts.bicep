// Alerts on dip-edge's structured records (README "Telemetry"): an action group and one
// scheduled query rule per condition. The queries live in ../queries/*.kql, where the tests
// check them against records the code writes; __NAME__ placeholders are the thresholds.
// Each rule fires when its query returns a row (count > 0) in the window.

@description('Azure region of the rules (the action group is global).')
param location string

@description('Name part shared by the resources, e.g. dipedge-abc123.')
param nameSuffix string

@description('Log Analytics workspace the Application Insights traces land in (AppTraces).')
param workspaceId string

@description('Email addresses told when an alert fires.')
param emails array

@description('Optional webhook (e.g. a chat or incident tool) told when an alert fires; empty: none.')
@secure()
param webhookUrl string

@description('Percentage of deliveries answered 5xx that alerts (with at least minDeliveries in 15 minutes).')
param failedPercent int

@description('Fewest deliveries in 15 minutes for the 5xx rate to count.')
param minDeliveries int

@description('Rejections with one code (4xx) in 15 minutes that alert.')
param rejections int

@description('Minutes GlobalSign Atlas or Key Vault must keep failing before the outage alert fires.')
@minValue(5)
@maxValue(360)
param outageMinutes int

@description('Hours without an expiry monitor run that alert (it runs daily).')
@minValue(25)
@maxValue(47)
param monitorSilenceHours int

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${nameSuffix}'
  location: 'global'
  properties: {
    groupShortName: 'dip-edge'
    enabled: true
    emailReceivers: [for (address, i) in emails: {
      name: 'email-${i}'
      emailAddress: address
      useCommonAlertSchema: true
    }]
    webhookReceivers: empty(webhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: webhookUrl
        useCommonAlertSchema: true
      }
    ]
  }
}

var rules = [
  {
    name: 'credential-expiry-error'
    displayName: 'dip-edge: a certificate is expired or about to expire'
    description: 'The latest expiry monitor run graded a watched certificate (Atlas access PFX, webhook TLS, DIP signing, the DIP\'s pinned certificates, their issuers) at error level.'
    severity: 1
    frequency: 'PT1H'
    window: 'P2D'
    query: loadTextContent('../queries/expiry-error.kql')
  }
  {
    name: 'credential-expiry-warning'
    displayName: 'dip-edge: a certificate needs renewing'
    description: 'The latest expiry monitor run graded a watched certificate at warning level (EXPIRY_WARNING_DAYS or EXPIRY_WARNING_FRACTION of its lifetime left).'
    severity: 2
    frequency: 'PT6H'
    window: 'P2D'
    query: loadTextContent('../queries/expiry-warning.kql')
  }
  {
    name: 'monitor-not-run'
    displayName: 'dip-edge: the expiry monitor has not run'
    description: 'No expiry monitor run was logged for ${monitorSilenceHours} hours (the ops app or its timer is down).'
    severity: 2
    frequency: 'PT1H'
    window: 'P2D'
    query: replace(loadTextContent('../queries/monitor-not-run.kql'), '__MONITOR_SILENCE_HOURS__', string(monitorSilenceHours))
  }
  {
    name: 'webhook-5xx-rate'
    displayName: 'dip-edge: the webhook is failing deliveries'
    description: 'More than ${failedPercent}% of deliveries answered 5xx (503 inbox.unavailable included) in 15 minutes; the DIP counts recipient failures.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: replace(replace(loadTextContent('../queries/webhook-5xx-rate.kql'), '__FAILED_PERCENT__', string(failedPercent)), '__MIN_DELIVERIES__', string(minDeliveries))
  }
  {
    name: 'webhook-rejections'
    displayName: 'dip-edge: the webhook is rejecting deliveries'
    description: 'More than ${rejections} deliveries rejected with one code in 15 minutes (a certificate, signature or envelope problem between the DIP and the webhook).'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: replace(loadTextContent('../queries/webhook-rejections.kql'), '__REJECTIONS__', string(rejections))
  }
  {
    name: 'conflicting-redelivery'
    displayName: 'dip-edge: a conflicting redelivery'
    description: 'A known transaction ID arrived again with different bytes (message.conflicting_redelivery); both are kept.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT5M'
    query: loadTextContent('../queries/conflicting-redelivery.kql')
  }
  {
    name: 'events-poisoned'
    displayName: 'dip-edge: an event went to the poison queue'
    description: 'An event message (a new PFX version, an upload) failed on every delivery and is in the events poison queue.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT5M'
    query: loadTextContent('../queries/events-poisoned.kql')
  }
  {
    name: 'dependency-outage'
    displayName: 'dip-edge: GlobalSign Atlas or Key Vault unavailable'
    description: 'GlobalSign Atlas or Key Vault kept failing for ${outageMinutes} minutes or more.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT${outageMinutes * 2}M'
    query: replace(loadTextContent('../queries/dependency-outage.kql'), '__OUTAGE_MINUTES__', string(outageMinutes))
  }
]

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: 'alert-${nameSuffix}-${rule.name}'
  location: location
  properties: {
    displayName: rule.displayName
    description: rule.description
    severity: rule.severity
    enabled: true
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    scopes: [
      workspaceId
    ]
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id

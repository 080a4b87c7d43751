// A workbook over dip-edge's structured records (README "Telemetry"): deliveries and
// rejections by code over time, handling-time percentiles, the expiry table, the recent
// credential changes. The queries are ../queries/workbook-*.kql (checked by the tests).

@description('Azure region.')
param location string

@description('Log Analytics workspace the Application Insights traces land in (AppTraces).')
param workspaceId string

@description('Shown as the workbook\'s name in the portal.')
param displayName string

var sections = [
  {
    title: 'Deliveries by outcome (accepted, or status and rejection code)'
    query: loadTextContent('../queries/workbook-deliveries.kql')
    visualization: 'timechart'
  }
  {
    title: 'Webhook handling time, ms (p50, p95, p99)'
    query: loadTextContent('../queries/workbook-latency.kql')
    visualization: 'timechart'
  }
  {
    title: 'Certificates watched by the expiry monitor (latest run)'
    query: loadTextContent('../queries/workbook-expiry.kql')
    visualization: 'table'
  }
  {
    title: 'Credential changes (audit trail)'
    query: loadTextContent('../queries/workbook-credential-changes.kql')
    visualization: 'table'
  }
]

var content = {
  version: 'Notebook/1.0'
  items: [for (section, i) in sections: {
    type: 3
    name: 'query-${i}'
    content: {
      version: 'KqlItem/1.0'
      title: section.title
      query: section.query
      size: 0
      timeContext: {
        durationMs: 604800000
      }
      queryType: 0
      resourceType: 'microsoft.operationalinsights/workspaces'
      visualization: section.visualization
    }
  }]
  isLocked: false
  fallbackResourceIds: [
    workspaceId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, workspaceId, 'dip-edge-workbook')
  location: location
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: workspaceId
    serializedData: string(content)
  }
}

output workbookId string = workbook.id

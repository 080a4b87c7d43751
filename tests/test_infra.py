"""infra/: every .bicep file parses, checkov finds nothing, and the security properties hold.

The Bicep CLI cannot be installed here, so the gate is pycep-parser (a Bicep grammar) over
every file, and checkov (from its own venv, ``.venv-infra``) over the directory. The
assertions below read the parsed templates - the same files a cloud team deploys.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from lark.exceptions import UnexpectedInput
from pycep import BicepParser

from shared.settings import SETTINGS
from tests.support.functions import functions

# Keep these tests on one worker: the templates are parsed once per worker.
pytestmark = pytest.mark.xdist_group("infra")

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
CHECKOV = ROOT / ".venv-infra" / "bin" / "checkov"

# Built-in Azure role definition IDs (the same in every tenant).
BUILTIN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Certificate User": "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
ROLE_NAMES = {guid: name for name, guid in BUILTIN_ROLES.items()}
# Roles that grant everything, or the Key Vault data plane wholesale: never used here.
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
    "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",  # Key Vault Administrator
}

KEY_VAULT_EVENTS = {
    "Microsoft.KeyVault.SecretNewVersionCreated",
    "Microsoft.KeyVault.CertificateNewVersionCreated",
    "Microsoft.KeyVault.SecretNearExpiry",
    "Microsoft.KeyVault.CertificateNearExpiry",
    "Microsoft.KeyVault.SecretExpired",
    "Microsoft.KeyVault.CertificateExpired",
}
WEBHOOK_FUNCTIONS = {"dip_webhook", "health"}
OPS_FUNCTIONS = {"health", "credentials_validate", "credentials", "portal", "events", "monitor"}


def parse_bicep(path: Path) -> dict:
    """The syntax gate: pycep-parser's Bicep grammar; raises on any syntax error."""
    return BicepParser().parse(file_path=path)


# --- reading parsed templates ---------------------------------------------------------

def render(node) -> str:
    """A compact source-like string of a parsed expression (to compare and search)."""
    if isinstance(node, dict):
        if "operator" in node:
            op = node["operator"]
            operands = [render(v) for v in op["operands"].values() if v is not None]
            if op["type"] == "property_accessor":
                return ".".join(operands)
            if op["type"] == "index_accessor":
                return f"{operands[0]}[{operands[1]}]"
            return f"{op['type']}({', '.join(operands)})"
        if "function" in node:
            fn = node["function"]
            args = [render(v) for v in fn["parameters"].values() if v is not None]
            return f"{fn['type']}({', '.join(args)})"
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(render(v) for v in node) + "]"
    return str(node)


def body(resource: dict) -> dict:
    """A resource's declared body, unwrapping ``if (...)`` and ``for`` forms."""
    config = resource["config"]
    while "loop_type" in config or "condition" in config:
        config = config["config"]
    return config


def code(path: Path) -> str:
    """A template's text without its comment lines (which may name what the code avoids)."""
    return re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)


def all_code(pattern: str = "*.bicep") -> str:
    return "\n".join(code(p) for p in INFRA.rglob(pattern))


def key(name: str) -> str:
    return name.strip("'")


def variable(template: dict, name: str):
    return template["variables"][name]["value"]


def resources_of(templates: dict, rtype: str, *, existing: bool = False):
    for path, template in templates.items():
        for symbol, resource in template.get("resources", {}).items():
            if resource["type"] == rtype and resource["existing"] is existing:
                yield path, symbol, body(resource)


def role_guid(role_definition_id, template: dict, item: dict | None = None) -> str:
    """The GUID inside ``subscriptionResourceId('...roleDefinitions', <guid expr>)``."""
    assert role_definition_id["function"]["type"] == "subscription_resource_id"
    ref = role_definition_id["function"]["parameters"]["resource_name_1"]
    text = render(ref)
    if item is not None and text.startswith("grant."):
        text = render(item[text.split(".", 1)[1]])
    if "." in text:  # roles.name
        var, attr = text.split(".", 1)
        return variable(template, var)[attr]
    if text in template.get("variables", {}):
        return variable(template, text)
    return text


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    """Every .bicep file under infra/, parsed (a syntax error fails every test here)."""
    files = sorted(INFRA.rglob("*.bicep"))
    assert files, "infra/ has no Bicep files"
    return {p.relative_to(INFRA).as_posix(): parse_bicep(p) for p in files}


@pytest.fixture(scope="module")
def main(templates):
    return templates["main.bicep"]


def site(templates, module: str) -> dict:
    (found,) = [b for p, _, b in resources_of(templates, "Microsoft.Web/sites") if p == module]
    return found


# --- syntax gate ----------------------------------------------------------------------

def test_every_bicep_file_parses_and_every_module_exists(templates):
    referenced = set()
    for path, template in templates.items():
        for module in template.get("modules", {}).values():
            target = (INFRA / path).parent / module["detail"]["path"]
            referenced.add(target.resolve().relative_to(INFRA).as_posix())
    assert referenced, "main.bicep uses no modules"
    assert referenced <= set(templates), f"missing modules: {referenced - set(templates)}"
    # Every module file is used: nothing stale sits beside the deployed templates.
    assert set(templates) - referenced == {"main.bicep"}


@pytest.mark.parametrize("breakage", ["truncated", "unclosed object", "stray token"])
def test_the_syntax_gate_rejects_broken_bicep(tmp_path, breakage):
    source = (INFRA / "main.bicep").read_text()
    broken = {
        "truncated": source[: len(source) * 2 // 3],
        "unclosed object": source.replace("  properties: {\n    reserved: true",
                                          "  properties: \n    reserved: true", 1),
        "stray token": source.replace("targetScope = 'resourceGroup'",
                                      "targetScope = 'resourceGroup' ]", 1),
    }[breakage]
    assert broken != source
    path = tmp_path / "main.bicep"
    path.write_text(broken)
    with pytest.raises(UnexpectedInput):
        parse_bicep(path)


# --- the webhook app: mutual TLS, warm, only its functions ---------------------------

def test_webhook_app_requires_client_certificates_without_exclusions(templates):
    props = site(templates, "modules/webhook-app.bicep")["properties"]
    assert props["clientCertEnabled"] is True
    assert props["clientCertMode"] == "Required"
    # An exclusion path would switch App Service to TLS renegotiation (403 on POSTs > 100 KB).
    assert "clientCertExclusionPaths" not in props
    raw = all_code()
    assert "clientCertExclusionPaths" not in raw
    assert "OptionalInteractiveUser" not in raw


@pytest.mark.parametrize("module", ["modules/webhook-app.bicep", "modules/ops-app.bicep"])
def test_apps_are_https_only_tls12_no_ftp_linux_python311(templates, module):
    app = site(templates, module)
    props, config = app["properties"], app["properties"]["siteConfig"]
    assert app["kind"] == "functionapp,linux"
    assert app["identity"] == {"type": "SystemAssigned"}
    assert props["httpsOnly"] is True
    assert float(config["minTlsVersion"]) >= 1.2
    assert float(config["scmMinTlsVersion"]) >= 1.2
    assert config["ftpsState"] == "Disabled"
    assert config["remoteDebuggingEnabled"] is False
    assert config["linuxFxVersion"] == "Python|3.13"
    # Basic-auth publishing (FTP and SCM) is off: deployment goes through Entra ID.
    policies = {b["name"]: b["properties"]["allow"] for p, _, b in resources_of(
        templates, "Microsoft.Web/sites/basicPublishingCredentialsPolicies") if p == module}
    assert policies == {"ftp": False, "scm": False}


def test_webhook_app_is_always_warm(templates):
    config = site(templates, "modules/webhook-app.bicep")["properties"]["siteConfig"]
    webhook = templates["modules/webhook-app.bicep"]
    assert config["minimumElasticInstanceCount"] == "alwaysReadyInstances"
    decorators = {d["type"]: d.get("argument") for d in
                  webhook["parameters"]["alwaysReadyInstances"]["decorators"]}
    assert decorators["min_value"] >= 1
    assert config["preWarmedInstanceCount"] >= 1
    (plan,) = [b for _, _, b in resources_of(templates, "Microsoft.Web/serverfarms")]
    assert plan["sku"]["tier"] == "ElasticPremium"
    assert plan["properties"]["reserved"] is True  # Linux


def test_each_app_disables_exactly_the_other_apps_functions(templates):
    declared = set(functions())  # the suite's one get_functions() call
    assert WEBHOOK_FUNCTIONS | OPS_FUNCTIONS == declared, "a function is in neither app"
    for module, runs in (("modules/webhook-app.bicep", WEBHOOK_FUNCTIONS),
                         ("modules/ops-app.bicep", OPS_FUNCTIONS)):
        settings = variable(templates[module], "disabledFunctionSettings")
        disabled = set()
        for name, value in settings.items():
            match = re.fullmatch(r"AzureWebJobs\.(\w+)\.Disabled", key(name))
            assert match and value == "true", name
            disabled.add(match.group(1))
        assert disabled == declared - runs, module


def test_ops_app_api_is_behind_entra_id(templates):
    (auth,) = [b for p, _, b in resources_of(templates, "Microsoft.Web/sites/config")
               if p == "modules/ops-app.bicep" and b["name"] == "authsettingsV2"]
    props = auth["properties"]
    assert props["platform"]["enabled"] is True
    validation = props["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert validation["excludedPaths"] == ["/api/health"]  # the anonymous probe, nothing else
    entra = props["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True
    assert entra["registration"]["clientId"] == "authClientId"
    assert props["httpSettings"]["requireHttps"] is True
    ops = site(templates, "modules/ops-app.bicep")["properties"]
    assert ops["clientCertEnabled"] is False  # Entra ID is the gate here, not certificates


def test_custom_hostname_binds_a_key_vault_certificate_with_sni(templates):
    (cert,) = [b for p, _, b in resources_of(templates, "Microsoft.Web/certificates")
               if p == "modules/webhook-app.bicep"]
    assert cert["properties"]["keyVaultId"] == "tlsCertificateVaultId"
    assert cert["properties"]["keyVaultSecretName"] == "tlsCertificateName"
    (binding,) = [b for _, _, b in resources_of(templates, "Microsoft.Web/sites/hostNameBindings")]
    assert binding["properties"]["sslState"] == "SniEnabled"
    assert render(binding["properties"]["thumbprint"]) == "tlsCertificate.properties.thumbprint"


# --- Key Vault and storage ------------------------------------------------------------

def test_key_vault_is_rbac_with_purge_protection(templates):
    (vault,) = [b for _, _, b in resources_of(templates, "Microsoft.KeyVault/vaults")]
    props = vault["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["publicNetworkAccess"] == "publicNetworkAccess"  # configurable
    assert "accessPolicies" not in props


def test_storage_accounts_are_keyless(templates):
    accounts = list(resources_of(templates, "Microsoft.Storage/storageAccounts"))
    assert len(accounts) == 2  # data + the host module (deployed once per app)
    for _, _, account in accounts:
        props = account["properties"]
        assert props["allowSharedKeyAccess"] is False
        assert props["allowBlobPublicAccess"] is False
        assert props["defaultToOAuthAuthentication"] is True
        assert props["supportsHttpsTrafficOnly"] is True
        assert props["minimumTlsVersion"] == "TLS1_2"
    raw = all_code("*.bicep*")
    for needs_a_key in ("listKeys", "listAccountSas", "AccountKey=", "WEBSITE_CONTENTAZUREFILE",
                        "WEBSITE_CONTENTSHARE"):
        assert needs_a_key not in raw
    for module in ("modules/webhook-app.bicep", "modules/ops-app.bicep"):
        platform = variable(templates[module], "platformSettings")
        assert platform["AzureWebJobsStorage__accountName"] == "hostStorageName"
        assert platform["AzureWebJobsStorage__credential"] == "managedidentity"
        assert "AzureWebJobsStorage" not in platform  # no connection string
        assert platform["WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID"] == "SystemAssigned"


def test_containers_and_queues_match_the_settings(main):
    params = main["modules"]["storage"]["config"]["params"]
    containers = {variable(main, n) for n in params["containerNames"]}
    queues = {variable(main, n) if n in main["variables"] else render(n)
              for n in params["queueNames"]}
    webhook = variable(main, "webhookOnlySettings")
    ops = variable(main, "opsOnlySettings")
    events_queue = variable(main, variable(main, "sharedSettings")["EVENTS_QUEUE"])
    assert variable(main, webhook["INBOX_CONTAINER"]) in containers
    assert variable(main, webhook["INBOX_QUEUE"]) in queues
    tables = {variable(main, n) for n in params["tableNames"]}
    assert tables == {variable(main, webhook["INBOX_TABLE"])}
    assert events_queue in queues
    assert f"{events_queue}-poison" in {q.replace("${eventsQueueName}", events_queue)
                                        for q in queues}
    assert variable(main, ops["UPLOADS_CONTAINER"]) in containers
    assert variable(main, ops["REPORTS_CONTAINER"]) in containers


# --- least privilege ------------------------------------------------------------------

def grants(templates) -> list[tuple[str, str, str, str]]:
    """(file, principal, role name, scope) for every role assignment in every template."""
    found = []
    for path, symbol, assignment in resources_of(templates,
                                                 "Microsoft.Authorization/roleAssignments"):
        template = templates[path]
        props = assignment["properties"]
        principal = render(props["principalId"])
        scope = render(assignment["scope"])
        loop = template["resources"][symbol]["config"].get("loop_type") or {}
        if isinstance(loop.get("detail", {}).get("array_name"), list):  # for x in [a, b]
            guid = role_guid(props["roleDefinitionId"], template)
            for item in loop["detail"]["array_name"]:
                found.append((path, render(item), ROLE_NAMES.get(guid, guid), scope))
            continue
        if principal.startswith("grant."):  # a loop over a grants list
            list_name = {"containers": "containerGrants", "queues": "queueGrants",
                         "tables": "tableGrants"}[scope.split("[")[0]]
            for item in variable(template, list_name):
                guid = role_guid(props["roleDefinitionId"], template, item)
                target = item.get("container") or item.get("queue") or item.get("table")
                found.append((path, render(item["principalId"]), ROLE_NAMES.get(guid, guid),
                              f"{list_name[:-6]}:{target}"))
            continue
        guid = role_guid(props["roleDefinitionId"], template)
        found.append((path, principal, ROLE_NAMES.get(guid, guid), scope))
    return found


def test_role_ids_are_the_known_built_in_roles(templates):
    roles = variable(templates["modules/access.bicep"], "roles")
    for name, guid in roles.items():
        assert guid in ROLE_NAMES, f"{name} = {guid} is not a known built-in role"
        assert ROLE_NAMES[guid].replace(" ", "").lower() == name.lower()
    everything = grants(templates)
    assert everything
    for path, principal, role, scope in everything:
        assert role in BUILTIN_ROLES, (path, principal, role, scope)
        assert BUILTIN_ROLES[role] not in FORBIDDEN_ROLES
    raw = all_code()
    for guid in FORBIDDEN_ROLES:
        assert guid not in raw


def test_webhook_app_may_only_write_the_inbox_and_read_the_package(templates):
    webhook = {(role, scope) for _, who, role, scope in grants(templates)
               if who == "webhookPrincipalId"}
    assert webhook == {
        ("Storage Blob Data Contributor", "container:inboxContainerName"),
        ("Storage Blob Data Reader", "container:packagesContainerName"),
        ("Storage Queue Data Message Sender", "queue:inboxQueueName"),
        ("Storage Table Data Contributor", "table:inboxTableName"),
        ("Monitoring Metrics Publisher", "appInsights"),
    }
    assert not any(role.startswith("Key Vault") for role, _ in webhook)


def test_ops_app_roles_are_scoped_to_what_it_uses(templates):
    ops = {(role, scope) for _, who, role, scope in grants(templates) if who == "opsPrincipalId"}
    assert ops == {
        ("Key Vault Secrets Officer", "vault"),
        ("Storage Blob Data Contributor", "container:uploadsContainerName"),
        ("Storage Blob Data Contributor", "container:reportsContainerName"),
        ("Storage Blob Data Reader", "container:packagesContainerName"),
        ("Storage Queue Data Contributor", "queue:eventsQueueName"),
        ("Storage Queue Data Contributor", "queue:${eventsQueueName}-poison"),
        ("Monitoring Metrics Publisher", "appInsights"),
    }


def test_account_wide_and_platform_roles_are_narrow(templates):
    others = [(path, who, role, scope) for path, who, role, scope in grants(templates)
              if who not in {"webhookPrincipalId", "opsPrincipalId"}]
    by_file = {}
    for path, who, role, scope in others:
        by_file.setdefault(path, set()).add((who, role, scope))
    # Each app owns its own host storage account, and nothing else account-wide.
    assert by_file["modules/host-storage.bicep"] == {
        ("appPrincipalId", "Storage Blob Data Owner", "account")}
    # Event Grid topics may only send to the events queue and write dead letters.
    assert {(role, scope) for _, role, scope in by_file["modules/events.bicep"]} == {
        ("Storage Queue Data Message Sender", "eventsQueue"),
        ("Storage Blob Data Contributor", "deadLetterContainer"),
    }
    # The App Service platform reads only the TLS certificate's secret, not the vault.
    assert by_file["modules/keyvault.bicep"] == {
        ("appServiceObjectId", "Key Vault Certificate User", "tlsCertificateSecret")}
    assert set(by_file) == {"modules/host-storage.bicep", "modules/events.bicep",
                            "modules/keyvault.bicep"}


# --- events and observability ---------------------------------------------------------

def test_event_grid_delivers_the_handled_events_to_the_events_queue(templates):
    events = templates["modules/events.bicep"]
    topics = {b["properties"]["topicType"]: b for _, _, b in
              resources_of(templates, "Microsoft.EventGrid/systemTopics")}
    assert set(topics) == {"Microsoft.KeyVault.vaults", "Microsoft.Storage.StorageAccounts"}
    assert all(t["identity"] == {"type": "SystemAssigned"} for t in topics.values())
    subscriptions = {b["name"]: b["properties"] for _, _, b in
                     resources_of(templates, "Microsoft.EventGrid/systemTopics/eventSubscriptions")}
    vault_types = subscriptions["to-events-queue"]["filter"]["includedEventTypes"]
    assert set(variable(events, vault_types)) == KEY_VAULT_EVENTS
    uploads = subscriptions["uploads-to-events-queue"]["filter"]
    assert uploads["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert uploads["subjectBeginsWith"] == (
        "/blobServices/default/containers/${uploadsContainerName}/")
    for props in subscriptions.values():
        delivery = props["deliveryWithResourceIdentity"]
        assert delivery["identity"] == {"type": "SystemAssigned"}
        assert delivery["destination"]["endpointType"] == "StorageQueue"
        assert delivery["destination"]["properties"]["queueName"] == "eventsQueueName"
        assert "destination" not in props  # no key- or webhook-based delivery
        assert props["deadLetterWithResourceIdentity"]["identity"] == {"type": "SystemAssigned"}


def test_telemetry_uses_entra_id_and_diagnostics_reach_log_analytics(templates):
    (insights,) = [b for _, _, b in resources_of(templates, "Microsoft.Insights/components")]
    assert insights["properties"]["DisableLocalAuth"] is True
    (workspace,) = [b for _, _, b in
                    resources_of(templates, "Microsoft.OperationalInsights/workspaces")]
    assert workspace["properties"]["features"]["disableLocalAuth"] is True
    diagnosed = {(p, render(b["scope"])) for p, _, b in
                 resources_of(templates, "Microsoft.Insights/diagnosticSettings")}
    assert diagnosed == {("modules/keyvault.bicep", "vault"),
                         ("modules/webhook-app.bicep", "site"), ("modules/ops-app.bicep", "site")}
    for module in ("modules/webhook-app.bicep", "modules/ops-app.bicep"):
        platform = variable(templates[module], "platformSettings")
        assert platform["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"


def decorator(param: dict, kind: str):
    return next((d["argument"] for d in param["decorators"] if d["type"] == kind), None)


def test_audit_tables_keep_logs_90_days_live_and_365_in_all(templates, main):
    # DSD002 Annex 1: audit logs kept at least 3 months live and 12 months archived.
    monitoring = templates["modules/monitoring.bicep"]
    params = monitoring["parameters"]
    assert decorator(params["retentionInDays"], "min_value") >= 90
    assert decorator(params["totalRetentionInDays"], "min_value") >= 365
    assert main["parameters"]["logRetentionDays"]["default"] >= 90
    assert main["parameters"]["logTotalRetentionDays"]["default"] >= 365
    passed = main["modules"]["monitoring"]["config"]["params"]
    assert (passed["retentionInDays"], passed["totalRetentionInDays"]) == (
        "logRetentionDays", "logTotalRetentionDays")
    (table,) = [b for _, _, b in resources_of(
        templates, "Microsoft.OperationalInsights/workspaces/tables")]
    loop = monitoring["resources"]["tables"]["config"]["loop_type"]
    assert loop["detail"]["array_name"] == "auditTables"
    assert {"AppTraces", "AZKVAuditLogs"} <= set(variable(monitoring, "auditTables"))
    assert table["properties"] == {"plan": "Analytics", "retentionInDays": "retentionInDays",
                                   "totalRetentionInDays": "totalRetentionInDays"}
    # Key Vault's audit log goes to its own table (AZKVAuditLogs), whose retention is set.
    (diagnostics,) = [b for p, _, b in resources_of(
        templates, "Microsoft.Insights/diagnosticSettings") if p == "modules/keyvault.bicep"]
    assert diagnostics["properties"]["logAnalyticsDestinationType"] == "Dedicated"


def test_key_vault_uses_the_management_api_version_that_outlives_february_2027(templates):
    versions = {(p, symbol, r["api_version"]) for p, t in templates.items()
                for symbol, r in t.get("resources", {}).items()
                if r["type"].startswith("Microsoft.KeyVault/")}
    assert len(versions) >= 4
    assert {v for _, _, v in versions} == {"2026-02-01"}


def test_alert_rules_notify_an_action_group(templates, main):
    alerts = templates["modules/alerts.bicep"]
    (group,) = [b for _, _, b in resources_of(templates, "Microsoft.Insights/actionGroups")]
    receivers = group["properties"]["emailReceivers"]
    assert receivers["loop_type"]["detail"]["array_name"] == "emails"
    assert receivers["config"]["useCommonAlertSchema"] is True
    assert "secure" in {d["type"] for d in alerts["parameters"]["webhookUrl"]["decorators"]}
    assert "secure" in {d["type"] for d in main["parameters"]["alertWebhookUrl"]["decorators"]}
    assert main["parameters"]["alertEmails"]["default"] == []
    (rule,) = [b for _, _, b in resources_of(templates, "Microsoft.Insights/scheduledQueryRules")]
    props = rule["properties"]
    assert props["scopes"] == ["workspaceId"]
    (criterion,) = props["criteria"]["allOf"]
    assert (criterion["timeAggregation"], criterion["operator"], criterion["threshold"]) == (
        "Count", "GreaterThan", 0)
    assert render(props["actions"]["actionGroups"][0]) == "actionGroup.id"
    passed = main["modules"]["alerts"]["config"]["params"]
    assert render(passed["workspaceId"]) == "monitoring.outputs.workspaceId"
    names = [r["name"] for r in variable(alerts, "rules")]
    assert names == ["credential-expiry-error", "credential-expiry-warning", "monitor-not-run",
                     "webhook-5xx-rate", "webhook-rejections", "conflicting-redelivery",
                     "events-poisoned", "dependency-outage"]
    # Every rule's query is a file under infra/queries/ (tests/test_telemetry.py runs them).
    for item in variable(alerts, "rules"):
        assert "load_text_content" in json.dumps(item["query"]), item["name"]


def test_workbook_reads_the_workspace(templates):
    (workbook,) = [b for _, _, b in resources_of(templates, "Microsoft.Insights/workbooks")]
    assert workbook["kind"] == "shared"
    assert workbook["properties"]["sourceId"] == "workspaceId"
    assert render(workbook["properties"]["serializedData"]) == "string(content)"
    sections = variable(templates["modules/workbook.bicep"], "sections")
    assert len(sections) == 4


# --- outputs and settings -------------------------------------------------------------

# keyVault is fine; key, keys, listKeys(, primaryKey are not.
SECRET_WORDS = re.compile(
    r"keys?(?![a-z])|secret|password|connection_?string|sas(?![a-z])|token|credential", re.I)


def test_outputs_give_the_urls_and_no_secrets(templates, main):
    assert {"webhookUrl", "opsUrl", "vaultUri", "storageAccountName"} <= set(main["outputs"])
    assert main["outputs"]["webhookUrl"]["value"].endswith("/api/webhooks/dip")
    for path, template in templates.items():
        for name, output in template.get("outputs", {}).items():
            text = f"{name} {render(output['value'])}"
            assert not SECRET_WORDS.search(text), f"{path}: output {text}"
            assert not any(d["type"] == "secure" for d in output["decorators"])


def test_app_settings_cover_every_setting_the_code_reads(main):
    shared = variable(main, "sharedSettings")
    webhook = shared | variable(main, "webhookOnlySettings")
    ops = shared | variable(main, "opsOnlySettings")
    # Read live: a setting added to shared/settings.py must be added to infra/ too.
    names = {s.name for s in SETTINGS}
    assert names <= set(webhook) | set(ops), f"not set in infra/: {names - set(webhook) - set(ops)}"
    assert set(shared) | set(webhook) | set(ops) <= names | {
        "EVENTS_STORAGE__queueServiceUri", "EVENTS_STORAGE__blobServiceUri"}
    # The webhook app is not told where the secrets are; the ops app is.
    assert not {"KEY_VAULT_URL", "SECRET_STORE"} & set(webhook)
    assert render(ops["KEY_VAULT_URL"]) == "keyVault.outputs.uri"
    assert ops["SECRET_STORE"] == "keyvault"
    assert webhook["INBOX_BACKEND"] == "blob"
    # Identity-based queue trigger connection; EVENTS_STORAGE itself must stay empty or the
    # host would read it as a connection string.
    assert ops["EVENTS_STORAGE"] == ""
    assert render(ops["EVENTS_STORAGE__queueServiceUri"]) == "storage.outputs.queueEndpoint"
    # Each app module gets its own union, overrides last.
    for module, only in (("webhookApp", "webhookOnlySettings"), ("opsApp", "opsOnlySettings")):
        passed = main["modules"][module]["config"]["params"]["codeSettings"]
        assert render(passed) == f"union(sharedSettings, {only}, settingOverrides)"


def test_literal_app_settings_are_values_the_declaration_accepts(main):
    from shared.settings import load_settings, setting_named

    for group in ("sharedSettings", "webhookOnlySettings", "opsOnlySettings"):
        for name, value in variable(main, group).items():
            setting = setting_named(name)
            names = {*main["parameters"], *main["variables"]}
            if setting is None or not isinstance(value, str) or value in names:
                continue  # an identity-based connection part, a parameter or an expression
            issues = load_settings({name: value}).issues_for(setting)
            assert issues == (), f"infra/main.bicep {group}.{name}: {issues}"


def test_parameter_file_sets_only_template_parameters(main):
    text = (INFRA / "main.bicepparam").read_text()
    assert re.search(r"^using 'main\.bicep'$", text, re.M)
    given = re.findall(r"^param (\w+) =", text, re.M)
    assert len(given) == len(set(given))
    declared = main["parameters"]
    assert set(given) <= set(declared)
    required = {name for name, p in declared.items() if p.get("default") is None}
    assert required <= set(given)
    assert "readEnvironmentVariable('DIP_EDGE_OPS_CLIENT_ID')" in text
    assert "readEnvironmentVariable('DIP_EDGE_CLIENT_IDENTITIES')" in text
    assert "readEnvironmentVariable('DIP_EDGE_SIGNER_IDENTITIES')" in text


@pytest.mark.parametrize("name", ["dipClientIdentities", "dipSignerIdentities"])
def test_identity_parameters_are_required(main, name):
    # No default (a deployment without them fails validation), no empty value either: the
    # webhook would refuse every delivery. The description says what to put there.
    param = main["parameters"][name]
    assert param.get("default") is None
    decorators = {d["type"]: d for d in param["decorators"]}
    assert int(render(decorators["min_length"]["argument"])) >= 3
    description = render(decorators["description"]["argument"])
    assert description.startswith("Required.") and "dip-edge identity-rule" in description


# --- checkov --------------------------------------------------------------------------

def run_checkov() -> dict:
    """checkov over infra/ (about 5 s warm), its JSON report."""
    assert CHECKOV.exists(), "checkov is missing: `make test` creates .venv-infra"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "bicep", "--skip-download",
         "-o", "json"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.stdout, result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_no_failed_checks_and_every_skip_is_explained():
    # One test, so checkov runs once per session however xdist distributes the tests.
    report = run_checkov()
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"])
              for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert summary["parsing_errors"] == 0  # checkov's own (older) parser read every file
    assert summary["passed"] > 30
    assert summary["resource_count"] > 50

    skipped = report["results"]["skipped_checks"]
    used = {(c["file_path"].lstrip("/"), c["check_id"]) for c in skipped}
    for check in skipped:
        reason = check["check_result"]["suppress_comment"]
        assert len(reason) > 30 and reason != "No comment provided", check["check_id"]
    declared = set()
    for path in INFRA.rglob("*.bicep"):
        for match in re.finditer(r"//\s*checkov:skip=(\w+):", path.read_text()):
            declared.add((path.relative_to(INFRA).as_posix(), match.group(1)))
    assert declared == used  # no stale skip, no skip without a comment in the template

// The Certificate Admin's page. Plain JS, no framework. Every value from a response is
// rendered with textContent (Trusted Types are required, so no HTML string ever reaches a
// sink). Secrets travel only in POST bodies; the function key and the last validated
// submission live in this closure's memory only, never in storage, cookies or the URL.
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const accessForm = $("access");
  const form = $("credentials");
  const keyField = $("function-key");
  const apiKey = $("api-key");
  const apiSecret = $("api-secret");
  const pfxFile = $("pfx-file");
  const pfxPassword = $("pfx-password");
  const saveButton = $("save");
  const result = $("result");
  const stored = $("stored");
  const maxPfxBytes = Number(form.dataset.maxPfxBytes) || 1048576;
  const KEPT_FOR_MS = 10 * 60 * 1000;  // a validated submission waits this long for Save

  let functionKey = null;
  let validated = null;  // {body, timer}: exactly what the last successful Validate sent
  let busy = false;

  // ---- rendering (text only) ----
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function replace(container, ...nodes) {
    container.replaceChildren(...nodes);
  }

  function definitions(pairs) {
    const list = el("dl", "facts");
    for (const [term, value] of pairs) {
      if (value === undefined || value === null || value === "") continue;
      list.append(el("dt", null, term), el("dd", null, value));
    }
    return list;
  }

  const HUMAN = (name) => String(name).replace(/([a-z])([A-Z])/g, "$1 $2")
    .replace(/^./, (c) => c.toUpperCase());

  // A JSON value of unknown shape (GlobalSign's account summary), as nested lists.
  function anyValue(value) {
    if (Array.isArray(value)) {
      const list = el("ul");
      for (const item of value) {
        const entry = el("li");
        entry.append(anyValue(item));
        list.append(entry);
      }
      return value.length ? list : document.createTextNode("none");
    }
    if (value && typeof value === "object") {
      const list = el("dl");
      for (const [key, item] of Object.entries(value)) {
        const dd = el("dd");
        dd.append(anyValue(item));
        list.append(el("dt", null, HUMAN(key)), dd);
      }
      return list;
    }
    return document.createTextNode(value === null ? "—" : String(value));
  }

  function findingNode(finding, level) {
    const box = el("div", level === "warning" ? "finding warning" : "finding");
    box.append(el("h4", null, finding.code));
    box.append(definitions([["Detail", finding.detail], ["Why it matters", finding.why],
                            ["What to do", finding.action]]));
    return box;
  }

  function findingsSection(title, findings, level) {
    const nodes = [];
    if (!Array.isArray(findings) || findings.length === 0) return nodes;
    nodes.push(el("h3", null, `${title} (${findings.length})`));
    for (const finding of findings) nodes.push(findingNode(finding, level));
    return nodes;
  }

  function certificateSection(cert) {
    if (!cert) return [];
    const key = [cert.keyType, cert.keySize ? `${cert.keySize} bits` : null, cert.curve]
      .filter(Boolean).join(" ");
    return [el("h3", null, "Certificate"), definitions([
      ["Subject", cert.subject], ["Issuer", cert.issuer],
      ["Serial number", cert.serialNumber],
      ["Thumbprint (SHA-1)", cert.thumbprintSha1],
      ["Thumbprint (SHA-256)", cert.thumbprintSha256],
      ["Not before", cert.notBefore], ["Not after", cert.notAfter],
      ["Days to expiry", cert.daysToExpiry], ["Key", key],
      ["Signature hash", cert.signatureHash],
      ["Extended key usages", (cert.extendedKeyUsages || []).join(", ") || null],
    ])];
  }

  function globalsignSection(globalsign) {
    if (!globalsign || !globalsign.proven || !globalsign.account) return [];
    const box = el("div");
    box.append(anyValue(globalsign.account));
    return [el("h3", null, "GlobalSign account"), box];
  }

  function banner(level, text) {
    return el("h3", `banner ${level}`, text);
  }

  function showResult(response) {
    const doc = response.doc || {};
    const nodes = [];
    if (response.status === 0) {
      nodes.push(banner("error", "The app could not be reached; nothing was sent or stored."));
    } else if (response.status === 201) {
      nodes.push(banner("ok", doc.status || "Added successfully"));
    } else if (response.status === 200 && doc.valid === true) {
      nodes.push(banner("ok", "Valid"));
    } else if (response.status === 503) {
      const wait = response.retryAfter ? ` Try again in ${response.retryAfter} s.` : "";
      nodes.push(banner("warning", `${doc.title || "Unavailable"}.${wait}`));
    } else {
      nodes.push(banner("error", doc.title ? `Not accepted: ${doc.title}`
        : `Not accepted (HTTP ${response.status})`));
    }
    if (response.status >= 400 && !Array.isArray(doc.errors) && doc.code) {
      nodes.push(findingNode({code: doc.code, detail: doc.detail}, "error"));
    }
    if (response.status === 401) {
      nodes.push(el("p", null, "Connect with the function key first (Access above); in " +
        "Azure, sign in again if your session ended."));
    }
    nodes.push(...findingsSection("Errors", doc.errors, "error"));
    nodes.push(...findingsSection("Warnings", doc.warnings, "warning"));
    nodes.push(...certificateSection(doc.certificate));
    nodes.push(...globalsignSection(doc.globalsign));
    replace(result, ...nodes);
  }

  function levelBadge(level, text) {
    return el("span", `level level-${["ok", "warning", "error"].includes(level) ? level
      : "error"}`, text || level);
  }

  function table(caption, headings, rows) {
    const node = el("table");
    node.append(el("caption", null, caption));
    const head = node.createTHead().insertRow();
    for (const heading of headings) {
      const th = el("th", null, heading);
      th.scope = "col";
      head.append(th);
    }
    const body = node.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const cell of row) {
        const td = tr.insertCell();
        if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "—";
        if (typeof cell === "string" && /\S{20,}/.test(cell)) td.className = "long";
      }
    }
    return node;
  }

  function codes(findings) {
    return (findings || []).map((f) => f.code).join(", ") || "—";
  }

  function subjectText(report) {
    const s = report.subject || {};
    if (report.kind === "upload") return `${s.container || "?"}/${s.blob || "?"}`;
    return [s.name, s.version].filter(Boolean).join(" version ") || report.name;
  }

  function showStored(response) {
    const doc = response.doc || {};
    if (response.status !== 200) {
      const message = response.status === 401
        ? "The function key was refused: check it and connect again."
        : `Could not read what is stored: ${doc.code || `HTTP ${response.status}`}` +
          (doc.detail ? ` — ${doc.detail}` : "");
      replace(stored, el("p", null, message));
      return;
    }
    const nodes = [];
    if (doc.stored && doc.credentials) {
      const c = doc.credentials;
      nodes.push(el("h3", null, "Current credential set"), definitions([
        ["Subject", c.subject], ["Thumbprint (SHA-1)", c.thumbprint],
        ["Thumbprint (SHA-256)", c.thumbprintSha256], ["Not after", c.notAfter],
        ["Validated at", c.validatedAt], ["Validated by", c.validatedBy || "unknown"],
        ["Credential set", c.credentialSet],
      ]));
    } else {
      nodes.push(el("p", null, "Nothing is stored yet."));
    }
    const monitor = doc.monitor;
    if (monitor && Array.isArray(monitor.credentials)) {
      nodes.push(table(`Latest expiry monitor run: ${monitor.checkedAt} (level ${monitor.level})`,
        ["Credential", "Level", "Detail", "Subject", "Thumbprint (SHA-1)", "Not after",
         "Days left"],
        monitor.credentials.map((c) => [c.credential, levelBadge(c.level), c.detail,
                                        c.subject, c.thumbprint, c.notAfter,
                                        c.daysLeft === null ? null : String(c.daysLeft)])));
    } else {
      nodes.push(el("p", null, "The expiry monitor has not run yet."));
    }
    if (doc.events === null || doc.events === undefined) {
      nodes.push(el("p", null, "The event validation reports could not be read."));
    } else if (doc.events.length === 0) {
      nodes.push(el("p", null, "No event validation report yet."));
    } else {
      nodes.push(table("Latest event validation reports",
        ["Handled at", "Kind", "Subject", "Outcome", "Errors", "Warnings"],
        doc.events.map((r) => [r.handledAt, r.kind, subjectText(r),
                               levelBadge(r.outcome === "passed" ? "ok" : "error",
                                          r.outcome || "unknown"),
                               codes(r.errors), codes(r.warnings)])));
    }
    replace(stored, ...nodes);
  }

  // ---- requests ----
  async function call(method, path, body) {
    const headers = {"Accept": "application/json", "X-DIP-Edge-CSRF": "1"};
    if (functionKey) headers["x-functions-key"] = functionKey;
    try {
      const response = await fetch(path, {method, headers, body, cache: "no-store",
                                           credentials: "same-origin", redirect: "error",
                                           referrerPolicy: "no-referrer"});
      let doc = null;
      try { doc = await response.json(); } catch (_) { doc = null; }
      return {status: response.status, doc, retryAfter: response.headers.get("Retry-After")};
    } catch (_) {
      return {status: 0, doc: null, retryAfter: null};
    }
  }

  async function loadStored() {
    replace(stored, el("p", null, "Reading…"));
    const response = await call("GET", "credentials");
    showStored(response);
    return response;
  }

  // ---- state ----
  function clearSecrets() {
    apiSecret.value = "";
    pfxPassword.value = "";
    pfxFile.value = "";
  }

  function discardValidated() {
    if (validated) clearTimeout(validated.timer);
    validated = null;
    saveButton.disabled = true;
  }

  for (const field of [apiKey, apiSecret, pfxFile, pfxPassword]) {
    field.addEventListener("input", discardValidated);
    field.addEventListener("change", discardValidated);
  }

  accessForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    functionKey = keyField.value.trim() || null;
    keyField.value = "";
    const status = $("access-status");
    if (!functionKey) {
      status.textContent = "Enter the function key.";
      return;
    }
    status.textContent = "Connecting…";
    const response = await loadStored();
    if (response.status === 401) {
      functionKey = null;
      status.textContent = "The function key was refused.";
    } else {
      status.textContent = response.status === 200 ? "Connected." : "Connected, but the " +
        "stored credentials could not be read.";
    }
  });

  $("refresh").addEventListener("click", loadStored);

  async function submission() {
    const file = pfxFile.files[0];
    if (file && file.size > maxPfxBytes) {
      return {tooLarge: file.size};
    }
    const body = new FormData();
    body.append("apiKey", apiKey.value);
    body.append("apiSecret", apiSecret.value);
    if (pfxPassword.value !== "") body.append("pfxPassword", pfxPassword.value);
    if (file) {
      // The bytes as read now, so Save sends what was validated even if the file changes.
      body.append("pfx", new Blob([await file.arrayBuffer()],
                                  {type: "application/x-pkcs12"}), "credential.pfx");
    }
    return {body};
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    form.setAttribute("aria-busy", "true");
    discardValidated();
    try {
      const prepared = await submission();
      if (prepared.tooLarge) {
        clearSecrets();
        showResult({status: 413, retryAfter: null, doc: {title: "The PFX is too large",
          errors: [{code: "pfx.too_large",
                    detail: `The file is ${prepared.tooLarge} bytes; a PFX may be at most ` +
                            `${maxPfxBytes} bytes. Nothing was sent.`,
                    why: "A real Atlas access PFX is a few kilobytes.",
                    action: "Check that you picked the PFX and not an archive or a backup."}],
          warnings: []}});
        return;
      }
      replace(result, el("p", null, "Validating…"));
      const response = await call("POST", "credentials/validate", prepared.body);
      clearSecrets();
      showResult(response);
      if (response.status === 200 && response.doc && response.doc.valid === true) {
        validated = {body: prepared.body,
                     timer: setTimeout(discardValidated, KEPT_FOR_MS)};
        saveButton.disabled = false;
      }
    } finally {
      busy = false;
      form.removeAttribute("aria-busy");
    }
  });

  saveButton.addEventListener("click", async () => {
    if (busy || !validated) return;
    busy = true;
    const body = validated.body;
    discardValidated();
    try {
      replace(result, el("p", null, "Saving…"));
      const response = await call("POST", "credentials", body);
      showResult(response);
      result.focus();  // Save is disabled now: the keyboard continues from the result
      if (response.status === 201) await loadStored();
    } finally {
      busy = false;
    }
  });
})();

// btd's web UI: plain JavaScript, no build step, no framework, nothing from the network.
// It speaks btd's own JSON-RPC at POST /rpc (docs/RPC.md) and listens to /events.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const FIELDS = [
  "info_hash", "name", "state", "state_detail", "progress", "size", "download_rate",
  "upload_rate", "eta", "labels", "peers", "seeds", "ratio", "error", "check_progress",
];
const REFRESH_MS = 2000; // the list, while the page is visible
const DETAIL_MS = 3000; // the open detail view
const MAX_FILE_ROWS = 2000; // rows drawn in a file table (a torrent may have 200,000)
const REFRESH_EVENTS = new Set([
  "added", "metadata", "started", "paused", "completed", "removed", "error", "verified",
  "queued", "moved", "disk_full", "disk_space_ok",
]);

const ui = {
  csrf: null,
  auth: false,
  rows: new Map(), // info_hash -> {li, torrent}
  labels: "",
  altEnabled: false,
  limits: null,
  ticks: 0,
  timer: null,
  due: 0, // when the timer fires (ms)
  detail: null, // info_hash shown in the detail view
  tab: "files", // its tab: only that one is fetched and drawn
  detailTimer: null,
  events: null,
  addFile: null, // {name, base64, files: [{index, path, length}]}
};

// -- talking to btd ---------------------------------------------------------------------------
class RpcError extends Error {
  constructor(error) {
    super(error.message);
    this.code = error.code;
    this.data = error.data;
  }
}

async function http(path, options = {}) {
  const headers = { "X-Btd-Csrf": ui.csrf || "", ...(options.headers || {}) };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401) {
    showLogin("Your login has expired: log in again.");
    throw new Error("not logged in");
  }
  return response;
}

let rpcId = 0;
async function rpc(method, params = {}) {
  const body = JSON.stringify({ jsonrpc: "2.0", method, params, id: ++rpcId });
  const response = await http("/rpc", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
  if (!response.ok) {
    throw new Error(`${method}: HTTP ${response.status} ${(await response.text()).trim()}`);
  }
  const reply = await response.json();
  if (reply.error) throw new RpcError(reply.error);
  return reply.result;
}

function describe(error) {
  if (error instanceof RpcError && error.code === -32601) {
    return `${error.data || error.message}: this daemon does not have that method`;
  }
  return error && error.message ? error.message : String(error);
}

// -- formatting -------------------------------------------------------------------------------
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
function size(n) {
  if (n === null || n === undefined) return "?";
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${UNITS[i]}`;
}
const rate = (n) => `${size(n)}/s`;
function duration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}
const percent = (p) => `${(Math.floor(p * 1000) / 10).toFixed(1)}%`;

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

function table(headers, numeric = []) {
  const t = document.createElement("table");
  const tr = t.createTHead().insertRow();
  headers.forEach((h, i) => {
    const th = document.createElement("th");
    th.textContent = h;
    if (numeric.includes(i)) th.className = "num";
    tr.append(th);
  });
  return [t, t.createTBody()];
}

function message(text) {
  const el = $("#message");
  el.textContent = text || "";
  el.hidden = !text;
}

// -- login ------------------------------------------------------------------------------------
function showLogin(text) {
  stop();
  $("#app").hidden = true;
  $("#actions").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = text || "";
  $("#login [name=username]").focus();
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  const body = JSON.stringify({ username: form.username.value, password: form.password.value });
  const response = await fetch("/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body,
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    const wait = response.headers.get("Retry-After");
    $("#login-error").textContent =
      reply.error + (response.status === 429 && wait ? ` (${wait} s)` : "");
    return;
  }
  form.password.value = "";
  enter(reply);
}

async function logout() {
  await http("/logout", { method: "POST" }).catch(() => null);
  location.reload();
}

// -- the list ---------------------------------------------------------------------------------
function stop() {
  clearTimeout(ui.timer);
  ui.timer = null;
  if (ui.events) ui.events.close();
  ui.events = null;
  closeDetail();
}

function schedule(delay) {
  clearTimeout(ui.timer);
  ui.due = Date.now() + delay;
  ui.timer = setTimeout(tick, delay);
}

// A refresh soon after an event; a burst of events (a batch add) still refreshes once.
function soon() {
  if (ui.timer !== null && ui.due - Date.now() <= 150) return;
  schedule(150);
}

async function tick() {
  ui.timer = null;
  if (document.hidden) return; // visibilitychange starts it again
  try {
    const torrents = await rpc("torrent.list", { fields: FIELDS });
    render(torrents);
    if (ui.ticks++ % 5 === 0) await loadSession();
    message("");
  } catch (error) {
    if (error.message === "not logged in") return;
    message(`Cannot reach btd: ${describe(error)}`);
  }
  if (!$("#app").hidden && ui.timer === null) schedule(REFRESH_MS);
}

async function loadSession() {
  const s = await rpc("session.get");
  ui.limits = s;
  ui.altEnabled = !!s.alt_enabled;
  $("#turtle").setAttribute("aria-pressed", String(ui.altEnabled));
}

function render(torrents) {
  const list = $("#torrents");
  const seen = new Set();
  let down = 0, up = 0;
  const labels = new Set();
  torrents.forEach((t, i) => {
    seen.add(t.info_hash);
    down += t.download_rate || 0;
    up += t.upload_rate || 0;
    (t.labels || []).forEach((l) => labels.add(l));
    let row = ui.rows.get(t.info_hash);
    if (!row) {
      row = { li: newRow(t.info_hash), torrent: t };
      ui.rows.set(t.info_hash, row);
    }
    row.torrent = t;
    updateRow(row.li, t);
    if (list.children[i] !== row.li) list.insertBefore(row.li, list.children[i] || null);
  });
  for (const [hash, row] of ui.rows) {
    if (!seen.has(hash)) { row.li.remove(); ui.rows.delete(hash); }
  }
  setText($("#totals"), `↓ ${rate(down)}  ↑ ${rate(up)}`);
  updateLabelFilter(labels);
  applyFilters();
  if (ui.detail && !seen.has(ui.detail)) closeDetail();
}

function newRow(hash) {
  const li = $("#row-template").content.firstElementChild.cloneNode(true);
  li.dataset.hash = hash;
  const main = $(".row-main", li);
  main.addEventListener("click", () => openDetail(hash));
  main.addEventListener("keydown", (e) => { if (e.key === "Enter") openDetail(hash); });
  $(".toggle", li).addEventListener("click", () => {
    const t = ui.rows.get(hash).torrent;
    act(stopped(t) ? "resume" : "pause", hash).catch((e) => message(describe(e)));
  });
  return li;
}

const stopped = (t) => t.state === "paused" || t.state === "error" || t.state === "stopped";

function updateRow(li, t) {
  li.dataset.state = t.state;
  setText($(".name", li), t.name);
  let state = t.state;
  if (t.state === "checking") state += ` ${percent(t.check_progress || 0)}`;
  if (t.state === "metadata" && t.metadata_progress !== undefined) {
    state += ` ${percent(t.metadata_progress)}`;
  }
  const detail = t.error || t.state_detail;
  setText($(".state", li), detail ? `${state}: ${detail}` : state);
  setText($(".size", li), t.size === null ? "" : size(t.size));
  const active = t.download_rate || t.upload_rate;
  setText($(".rates", li), active ? `↓ ${rate(t.download_rate)} ↑ ${rate(t.upload_rate)}` : "");
  setText($(".eta", li), t.state === "downloading" && t.eta ? `${duration(t.eta)} left` : "");
  setText($(".pct", li), percent(t.progress));
  $(".fill", li).style.width = `${(t.progress * 100).toFixed(2)}%`;
  setText($(".toggle", li), stopped(t) ? "Resume" : "Pause");
  const labels = $(".labels", li);
  const text = (t.labels || []).join("\n");
  if (labels.dataset.text !== text) {
    labels.dataset.text = text;
    labels.replaceChildren(...(t.labels || []).map((l) => {
      const span = document.createElement("span");
      span.textContent = l;
      return span;
    }));
  }
}

function updateLabelFilter(labels) {
  const names = [...labels].sort();
  const key = names.join("\n");
  if (key === ui.labels) return;
  ui.labels = key;
  const select = $("#filter-label");
  const chosen = select.value;
  select.replaceChildren(new Option("All labels", ""), ...names.map((l) => new Option(l, l)));
  select.value = names.includes(chosen) ? chosen : "";
}

function applyFilters() {
  const text = $("#search").value.trim().toLowerCase();
  const state = $("#filter-state").value;
  const label = $("#filter-label").value;
  let shown = 0;
  for (const { li, torrent: t } of ui.rows.values()) {
    const show = (!text || t.name.toLowerCase().includes(text))
      && (!state || t.state === state)
      && (!label || (t.labels || []).includes(label));
    li.hidden = !show;
    if (show) shown++;
  }
  $("#empty").hidden = shown > 0;
}

function listen() {
  if (ui.events || typeof EventSource === "undefined") return;
  ui.events = new EventSource("/events");
  ui.events.onmessage = (e) => {
    let note;
    try { note = JSON.parse(e.data); } catch { return; }
    const params = note.params || {};
    if (!REFRESH_EVENTS.has(params.event)) return;
    if (!document.hidden) soon();
    if (ui.detail && params.info_hash === ui.detail) loadDetail();
  };
}

// -- actions ----------------------------------------------------------------------------------
async function act(action, hash) {
  const params = { info_hash: hash };
  if (action === "remove" || action === "remove-data") {
    const t = ui.rows.get(hash).torrent;
    const withData = action === "remove-data";
    const text = withData
      ? `Remove "${t.name}" and DELETE its downloaded files? This cannot be undone.`
      : `Remove "${t.name}" from btd? Its files stay on disk.`;
    if (!(await confirmDialog(text, withData ? "Remove and delete" : "Remove"))) return;
    params.delete_data = withData;
    await rpc("torrent.remove", params);
    closeDetail();
  } else {
    await rpc(`torrent.${action}`, params);
  }
  schedule(0);
  if (ui.detail === hash) loadDetail();
}

function confirmDialog(text, label) {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = label;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// -- the detail view --------------------------------------------------------------------------
function openDetail(hash) {
  ui.detail = hash;
  $("#detail-error").textContent = "";
  $("#detail-name").textContent = ui.rows.get(hash).torrent.name;
  const dialog = $("#detail-dialog");
  if (!dialog.open) dialog.showModal();
  loadDetail();
}

function closeDetail() {
  ui.detail = null;
  clearTimeout(ui.detailTimer);
  const dialog = $("#detail-dialog");
  if (dialog.open) dialog.close();
}

async function loadDetail() {
  const hash = ui.detail;
  if (!hash) return;
  clearTimeout(ui.detailTimer);
  try {
    const t = await rpc("torrent.get", { info_hash: hash });
    const wantPeers = ui.tab === "peers" && t.state !== "metadata";
    const peers = wantPeers ? await rpc("torrent.peers", { info_hash: hash }) : [];
    if (ui.detail !== hash) return;
    showDetail(t, peers);
  } catch (error) {
    if (ui.detail === hash) $("#detail-error").textContent = describe(error);
  }
  if (ui.detail === hash) ui.detailTimer = setTimeout(loadDetail, DETAIL_MS);
}

function showDetail(t, peers) {
  setText($("#detail-name"), t.name);
  const parts = [t.state, `${percent(t.progress)} of ${size(t.size)}`, t.save_path];
  if (t.labels && t.labels.length) parts.push(`labels: ${t.labels.join(", ")}`);
  if (t.error) parts.push(t.error);
  setText($("#detail-summary"), parts.join(" · "));
  if (ui.tab === "files") showFiles(t);
  else if (ui.tab === "peers") showPeers(peers);
  else if (ui.tab === "trackers") showTrackers(t.trackers || []);
  else showPieces(t);
}

function showFiles(t) {
  const panel = $('[data-panel="files"]');
  if (panel.contains(document.activeElement)) return; // not while the user edits
  if (!t.files.length) { panel.textContent = "No file list yet (waiting for metadata)."; return; }
  const [tableEl, body] = table(["Get", "File", "Size", "Done", "Priority"], [2, 3]);
  for (const f of t.files.slice(0, MAX_FILE_ROWS)) {
    const tr = body.insertRow();
    const wanted = document.createElement("input");
    wanted.type = "checkbox";
    wanted.checked = f.wanted;
    wanted.setAttribute("aria-label", `download ${f.path}`);
    wanted.addEventListener("change", () => setFiles(t.info_hash, f.index, { wanted: wanted.checked }));
    cell(tr, "").append(wanted);
    cell(tr, f.path);
    cell(tr, size(f.length), "num");
    cell(tr, percent(f.progress), "num");
    const priority = document.createElement("select");
    for (const p of ["low", "normal", "high"]) priority.append(new Option(p, p));
    priority.value = f.priority;
    priority.setAttribute("aria-label", `priority of ${f.path}`);
    priority.addEventListener("change", () => setFiles(t.info_hash, f.index, { priority: priority.value }));
    cell(tr, "").append(priority);
  }
  const nodes = [tableEl];
  if (t.files.length > MAX_FILE_ROWS) {
    const more = document.createElement("p");
    more.className = "hint";
    more.textContent = `${t.files.length - MAX_FILE_ROWS} more files not shown (btctl files shows them all).`;
    nodes.push(more);
  }
  panel.replaceChildren(...nodes);
}

async function setFiles(hash, index, change) {
  try {
    await rpc("torrent.set_files", { info_hash: hash, indices: [index], ...change });
  } catch (error) {
    $("#detail-error").textContent = describe(error);
  }
  document.activeElement.blur();
  loadDetail();
}

function showPeers(peers) {
  const panel = $('[data-panel="peers"]');
  if (!peers.length) { panel.textContent = "No peers connected."; return; }
  const [tableEl, body] = table(["Address", "Client", "Has", "Down", "Up"], [2, 3, 4]);
  for (const p of peers) {
    const tr = body.insertRow();
    cell(tr, p.address.includes(":") ? `[${p.address}]:${p.port}` : `${p.address}:${p.port}`);
    cell(tr, p.client || "");
    cell(tr, percent(p.progress), "num");
    cell(tr, rate(p.download_rate), "num");
    cell(tr, rate(p.upload_rate), "num");
  }
  panel.replaceChildren(tableEl);
}

function showTrackers(trackers) {
  const panel = $('[data-panel="trackers"]');
  if (!trackers.length) { panel.textContent = "No trackers."; return; }
  const [tableEl, body] = table(["Tracker", "Status", "Seeds", "Peers", "Next"], [2, 3, 4]);
  for (const tr0 of trackers) {
    const tr = body.insertRow();
    cell(tr, tr0.url);
    cell(tr, tr0.last_error ? `${tr0.status}: ${tr0.last_error}` : tr0.status);
    cell(tr, tr0.seeders ?? "", "num");
    cell(tr, tr0.leechers ?? "", "num");
    cell(tr, tr0.next_announce === null ? "" : duration(Math.round(tr0.next_announce)), "num");
  }
  panel.replaceChildren(tableEl);
}

// The piece map: torrent.get's piece_map is a hex bitfield (piece 0 = the first byte's top
// bit). Each column of the canvas shows the share of its pieces that are verified.
function showPieces(t) {
  const canvas = $("#piece-map");
  const count = t.pieces || 0;
  setText($("#piece-text"), count
    ? `${t.pieces_have} of ${count} pieces verified (${size(t.piece_length)} each)` : "No pieces yet.");
  const width = Math.max(1, Math.min(canvas.clientWidth || 600, 2000));
  canvas.width = width;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#e5e7eb";
  ctx.fillRect(0, 0, width, canvas.height);
  if (!count || !t.piece_map) return;
  const have = (i) => (parseInt(t.piece_map[i >> 2], 16) >> (3 - (i & 3))) & 1;
  const columns = Math.min(width, count);
  const step = width / columns;
  for (let c = 0; c < columns; c++) {
    const first = Math.floor((c * count) / columns);
    const last = Math.max(first + 1, Math.floor(((c + 1) * count) / columns));
    let got = 0;
    for (let i = first; i < last; i++) got += have(i);
    if (!got) continue;
    ctx.fillStyle = `rgba(37, 99, 235, ${0.25 + (0.75 * got) / (last - first)})`;
    ctx.fillRect(Math.floor(c * step), 0, Math.ceil(step), canvas.height);
  }
}

function showTab(name) {
  document.querySelectorAll("#detail-dialog [data-tab]").forEach((b) => {
    b.setAttribute("aria-selected", String(b.dataset.tab === name));
  });
  document.querySelectorAll("#detail-dialog [data-panel]").forEach((p) => {
    p.hidden = p.dataset.panel !== name;
  });
  ui.tab = name;
  if (ui.detail) loadDetail();
}

// -- adding -----------------------------------------------------------------------------------
// A minimal bencode reader: enough to list a .torrent's files before it is added.
function bdecode(bytes) {
  let at = 0;
  const text = new TextDecoder();
  const digitsUntil = (end) => {
    const stop = bytes.indexOf(end, at);
    if (stop < 0) throw new Error("not a .torrent file (bencode)");
    const n = Number(text.decode(bytes.subarray(at, stop)));
    if (!Number.isSafeInteger(n)) throw new Error("not a .torrent file (bencode)");
    at = stop + 1;
    return n;
  };
  const value = () => {
    const c = bytes[at];
    if (c === 0x69) { at++; return digitsUntil(0x65); } // i...e
    if (c === 0x6c || c === 0x64) { // l...e, d...e
      at++;
      const list = [];
      while (bytes[at] !== 0x65) {
        if (at >= bytes.length) throw new Error("not a .torrent file (bencode)");
        list.push(value());
      }
      at++;
      if (c === 0x6c) return list;
      const dict = {};
      for (let i = 0; i + 1 < list.length; i += 2) dict[text.decode(list[i])] = list[i + 1];
      return dict;
    }
    const n = digitsUntil(0x3a); // length:bytes
    const s = bytes.subarray(at, at + n);
    at += n;
    return s;
  };
  return value();
}

function torrentFiles(bytes) {
  const meta = bdecode(bytes);
  const info = meta && meta.info;
  if (!info || !info.name) throw new Error("not a .torrent file (no info)");
  const text = new TextDecoder();
  if (!info.files) return [{ index: 0, path: text.decode(info.name), length: info.length }];
  const files = [];
  info.files.forEach((f, index) => {
    const attr = f.attr ? text.decode(f.attr) : "";
    if (attr.includes("p")) return; // a BEP 47 padding file
    const path = (f["path.utf-8"] || f.path || []).map((p) => text.decode(p)).join("/");
    files.push({ index, path, length: f.length });
  });
  return files;
}

function base64(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(out);
}

async function chooseFile() {
  const input = $("#add-file");
  const pick = $("#add-files");
  const list = $("#add-file-list");
  ui.addFile = null;
  pick.hidden = true;
  $("#add-error").textContent = "";
  const file = input.files[0];
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  ui.addFile = { name: file.name, base64: base64(bytes), files: [] };
  try {
    ui.addFile.files = torrentFiles(bytes);
  } catch (error) {
    $("#add-error").textContent = `${file.name}: ${error.message} (btd will say more)`;
    return;
  }
  if (ui.addFile.files.length < 2) return;
  list.replaceChildren(...ui.addFile.files.slice(0, MAX_FILE_ROWS).map((f) => {
    const li = document.createElement("li");
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.dataset.index = f.index;
    label.append(box, ` ${f.path} (${size(f.length)})`);
    li.append(label);
    return li;
  }));
  pick.hidden = false;
}

function addOptions() {
  const options = {};
  const folder = $("#add-folder").value.trim();
  if (folder) options.save_path = folder;
  if ($("#add-paused").checked) options.paused = true;
  const labels = $("#add-labels").value.split(",").map((l) => l.trim()).filter((l) => l);
  if (labels.length) options.labels = labels;
  return options;
}

async function submitAdd(event) {
  event.preventDefault();
  const error = $("#add-error");
  error.textContent = "";
  const link = $("#add-link").value.trim();
  const options = addOptions();
  let call;
  if (ui.addFile) {
    const skipped = [...document.querySelectorAll("#add-file-list input:not(:checked)")]
      .map((box) => Number(box.dataset.index));
    if (skipped.length) options.files_skipped = skipped;
    call = ["torrent.add", { metainfo: ui.addFile.base64, ...options }];
  } else if (link.startsWith("magnet:")) {
    call = ["torrent.add", { magnet: link, ...options }];
  } else if (/^https?:\/\//i.test(link)) {
    call = ["torrent.add_url", { url: link, ...options }];
  } else {
    error.textContent = "Choose a .torrent file, or give a magnet link or an http(s) URL.";
    return;
  }
  $("#add-submit").disabled = true;
  try {
    const result = await rpc(...call);
    $("#add-dialog").close();
    message(result.added === false ? `${result.name} is already there (${result.save_path}).` : "");
    schedule(0);
  } catch (e) {
    error.textContent = describe(e);
  } finally {
    $("#add-submit").disabled = false;
  }
}

function openAdd() {
  $("#add-form").reset();
  ui.addFile = null;
  $("#add-files").hidden = true;
  $("#add-error").textContent = "";
  $("#add-dialog").showModal();
}

// -- speed limits -----------------------------------------------------------------------------
const KIB = 1024;
const LIMIT_INPUTS = {
  "#limit-down": "download_limit",
  "#limit-up": "upload_limit",
  "#limit-alt-down": "alt_download_limit",
  "#limit-alt-up": "alt_upload_limit",
};

async function openLimits() {
  $("#limits-error").textContent = "";
  try { await loadSession(); } catch (e) { message(describe(e)); return; }
  for (const [sel, key] of Object.entries(LIMIT_INPUTS)) {
    $(sel).value = Math.round((ui.limits[key] || 0) / KIB);
  }
  $("#limits-dialog").showModal();
}

async function saveLimits(event) {
  event.preventDefault();
  const settings = {};
  for (const [sel, key] of Object.entries(LIMIT_INPUTS)) {
    const value = Number($(sel).value || 0);
    if (!Number.isInteger(value) || value < 0) {
      $("#limits-error").textContent = "Limits are whole KiB/s, 0 or more.";
      return;
    }
    settings[key] = value * KIB;
  }
  try {
    await rpc("session.set", { settings });
    $("#limits-dialog").close();
    await loadSession();
  } catch (e) {
    $("#limits-error").textContent = describe(e);
  }
}

async function toggleTurtle() {
  try {
    await rpc("session.set", { settings: { alt_enabled: !ui.altEnabled } });
    await loadSession();
  } catch (e) {
    message(describe(e));
  }
}

// -- start ------------------------------------------------------------------------------------
function enter(session) {
  ui.csrf = session.csrf;
  ui.auth = session.auth;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#actions").hidden = false;
  $("#logout").hidden = !session.auth;
  listen();
  schedule(0);
}

function wire() {
  $("#login").addEventListener("submit", (e) => login(e).catch((x) => {
    $("#login-error").textContent = describe(x);
  }));
  $("#logout").addEventListener("click", logout);
  $("#turtle").addEventListener("click", toggleTurtle);
  $("#open-add").addEventListener("click", openAdd);
  $("#add-cancel").addEventListener("click", () => $("#add-dialog").close());
  $("#add-file").addEventListener("change", () => chooseFile().catch((e) => {
    $("#add-error").textContent = describe(e);
  }));
  $("#add-form").addEventListener("submit", submitAdd);
  $("#open-limits").addEventListener("click", openLimits);
  $("#limits-cancel").addEventListener("click", () => $("#limits-dialog").close());
  $("#limits-form").addEventListener("submit", saveLimits);
  $("#detail-close").addEventListener("click", closeDetail);
  $("#detail-dialog").addEventListener("close", () => { ui.detail = null; clearTimeout(ui.detailTimer); });
  document.querySelectorAll("#detail-dialog [data-act]").forEach((button) => {
    button.addEventListener("click", () => {
      const hash = ui.detail;
      $("#detail-error").textContent = "";
      act(button.dataset.act, hash).catch((e) => { $("#detail-error").textContent = describe(e); });
    });
  });
  document.querySelectorAll("#detail-dialog [data-tab]").forEach((button) => {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  });
  for (const sel of ["#search", "#filter-state", "#filter-label"]) {
    $(sel).addEventListener("input", applyFilters);
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !$("#app").hidden) schedule(0);
  });
}

async function start() {
  wire();
  try {
    const response = await fetch("/session", { credentials: "same-origin" });
    const session = await response.json();
    if (session.logged_in) enter(session);
    else showLogin("");
  } catch (error) {
    message(`Cannot reach btd: ${describe(error)}`);
  }
}

start();

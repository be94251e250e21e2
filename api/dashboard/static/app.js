// The officers' dashboard: hotspots on a map and in a ranked table, a detail panel with charts,
// the case workflow, vehicles with tracks and live positions, and exports. Plain browser
// JavaScript over the /v1 API; Leaflet is served from /vendor (installed from npm), no CDN.
"use strict";
(function () {
  const { t, named, unit: unitText, status: statusLabel } = window.EnvI18n;
  const state = {
    config: null,
    map: null,
    layers: {},
    hotspots: [],
    grids: [],
    cases: [],
    selected: null,
    vehicleMarkers: new Map(),
    live: false,
  };
  // Colours by label (docs/hotspots.md): persistent, candidate, episodic.
  const LABEL_COLORS = { persistent: "#c0392b", candidate: "#e67e22", episodic: "#8e44ad" };

  const $ = (id) => document.getElementById(id);
  const apiKey = () => localStorage.getItem("envpatrol.key") || "";

  function say(text) {
    $("message").textContent = text || "";
  }

  async function api(path, options = {}) {
    const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (apiKey()) headers["X-API-Key"] = apiKey();
    if (options.body && typeof options.body !== "string" && !(options.body instanceof Blob)) {
      headers["Content-Type"] = "application/json";
      options = Object.assign({}, options, { body: JSON.stringify(options.body) });
    }
    const response = await fetch(path, Object.assign({}, options, { headers }));
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch (_) { /* not JSON */ }
      const error = new Error(`${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    if (response.status === 204) return null;
    return options.raw ? response : response.json();
  }

  // Display coordinates: WGS-84 as stored, or GCJ-02 on a Chinese base map (display only).
  function toDisplay(lat, lon) {
    if (state.config && state.config.tile_datum === "gcj02") {
      const g = window.EnvDatum.wgs84ToGcj02(lon, lat);
      return L.latLng(g[1], g[0]);
    }
    return L.latLng(lat, lon);
  }
  const geoOptions = (extra) =>
    Object.assign({ coordsToLatLng: (c) => toDisplay(c[1], c[0]) }, extra);

  function labelColor(label) {
    return LABEL_COLORS[label] || "#7f8c8d";
  }

  function applyLabels() {
    document.documentElement.lang = window.EnvI18n.getLang() === "zh" ? "zh" : "en";
    document.querySelectorAll("[data-i18n]").forEach((el) => {
      el.textContent = t(el.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
    document.title = t("title");
  }

  function isoFromInput(el) {
    return el.value ? new Date(el.value).toISOString() : null;
  }

  function toInput(date) {
    const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16);
  }

  function query(extra) {
    const params = new URLSearchParams();
    params.set("pollutant", $("pollutant").value);
    const from = isoFromInput($("from"));
    const to = isoFromInput($("to"));
    if (from) params.set("from", from);
    if (to) params.set("to", to);
    Object.entries(extra || {}).forEach(([k, v]) => v != null && v !== "" && params.set(k, v));
    return params;
  }

  function initMap() {
    const map = L.map("map", { preferCanvas: false }).setView([39.893, 116.462], 15);
    const config = state.config;
    if (config.tile_url) {
      L.tileLayer(config.tile_url, {
        maxZoom: 19,
        attribution: config.tile_attribution || "",
        subdomains: "1234",
      }).addTo(map);
    }
    if (config.tile_overlay_url) {
      L.tileLayer(config.tile_overlay_url, { maxZoom: 19, subdomains: "1234" }).addTo(map);
    }
    const note = L.control({ position: "bottomleft" });
    note.onAdd = () => {
      const div = L.DomUtil.create("div", "leaflet-control-attribution");
      div.id = "map-note";
      return div;
    };
    note.addTo(map);
    const legend = L.control({ position: "bottomright" });
    legend.onAdd = () => {
      const div = L.DomUtil.create("div", "leaflet-control-attribution");
      div.id = "map-legend";
      div.innerHTML = legendHtml();
      return div;
    };
    legend.addTo(map);
    state.layers.streets = L.layerGroup().addTo(map);
    state.layers.grids = L.layerGroup().addTo(map);
    state.layers.hotspots = L.layerGroup().addTo(map);
    state.layers.tracks = L.layerGroup().addTo(map);
    state.layers.vehicles = L.layerGroup().addTo(map);
    state.map = map;
  }

  // The street layer works without tiles: the operator's street file, served by the API.
  async function loadStreets() {
    const doc = await api("/v1/streets");
    state.layers.streets.clearLayers();
    if (!doc.features.length) return;
    L.geoJSON(doc, geoOptions({
      style: { color: "#868e96", weight: 3, opacity: 0.7 },
      onEachFeature: (feature, layer) => {
        const p = feature.properties || {};
        const name = p[`name:${window.EnvI18n.getLang()}`] || p.name;
        if (name) layer.bindTooltip(name, { sticky: true });
      },
    })).addTo(state.layers.streets);
    const bounds = state.layers.streets.getLayers()[0].getBounds();
    if (!state.fitted && bounds.isValid()) state.map.fitBounds(bounds.pad(0.1), { maxZoom: 16 });
  }

  function legendHtml() {
    return Object.entries(LABEL_COLORS)
      .map(([label, color]) => `<span class="swatch" style="background:${color}"></span>${t(`label_${label}`)}`)
      .join(" ");
  }

  // Once an officer sets From/To, the list is the analysis run covering that window; before,
  // the newest run (the default range, the last 30 days, is what the job analyses anyway).
  function hotspotQuery() {
    const params = new URLSearchParams();
    params.set("pollutant", $("pollutant").value);
    [["grid", $("grid").value], ["label", $("label").value], ["stratum", $("stratum").value]]
      .forEach(([k, v]) => v && params.set(k, v));
    if (state.rangeSet) {
      const from = isoFromInput($("from"));
      const to = isoFromInput($("to"));
      if (from) params.set("from", from);
      if (to) params.set("to", to);
    }
    return params;
  }

  // No run covers the chosen window: an admin may ask the job for one, and the list follows
  // when it is done.
  function offerRun() {
    const note = $("run-note");
    note.textContent = t("no_run_for_range");
    if (!apiKey()) return;
    const button = document.createElement("button");
    button.textContent = t("analyse_range");
    button.addEventListener("click", async () => {
      try {
        const made = await api("/v1/hotspot-runs", {
          method: "POST",
          body: { from: isoFromInput($("from")), to: isoFromInput($("to")) },
        });
        note.textContent = t("run_requested");
        for (let i = 0; i < 240; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, 2500));
          const request = await api(`/v1/hotspot-runs/requests/${made.id}`);
          if (request.status === "done") return loadHotspots();
          if (request.status === "failed") throw new Error(request.error || "failed");
        }
      } catch (error) {
        say(`${t("error")}: ${error.message}`);
      }
    });
    note.appendChild(document.createTextNode(" "));
    note.appendChild(button);
  }

  function updateReportLink() {
    $("report-link").href = `/v1/reports/inventory?${hotspotQuery()}`;
  }

  function mapNote() {
    const el = document.getElementById("map-note");
    if (!el) return;
    const parts = [];
    if (!state.config.tile_url) parts.push(t("tiles_none"));
    if (state.config.tile_datum === "gcj02") parts.push(t("gcj_mode"));
    el.textContent = parts.join(" · ");
  }

  async function loadPollutants() {
    const doc = await api("/v1/pollutants");
    state.pollutants = Object.fromEntries(doc.results.map((p) => [p.name, p]));
    const select = $("pollutant");
    select.innerHTML = "";
    doc.results
      .filter((p) => p.hotspots)
      .forEach((p) => {
        const option = document.createElement("option");
        option.value = p.name;
        option.textContent = `${window.EnvI18n.getLang() === "zh" ? p.label_zh : p.label} (${unitText(p.unit)})`;
        select.appendChild(option);
      });
    const saved = localStorage.getItem("envpatrol.pollutant");
    if (saved && [...select.options].some((o) => o.value === saved)) select.value = saved;
  }

  async function loadGrids() {
    const doc = await api("/v1/grids");
    state.grids = doc.features;
    const select = $("grid");
    const current = select.value;
    select.innerHTML = `<option value="">${t("all_grids")}</option>`;
    state.layers.grids.clearLayers();
    doc.features.forEach((feature) => {
      const option = document.createElement("option");
      option.value = feature.id;
      option.textContent = feature.properties.name;
      select.appendChild(option);
      L.geoJSON(feature, geoOptions({ style: { color: "#20344a", weight: 1.5, fill: false, dashArray: "5 4" } }))
        .bindTooltip(`${feature.properties.name} · ${feature.properties.responsible}`)
        .addTo(state.layers.grids);
    });
    select.value = current;
  }

  // Hotspots come from the newest run of the analysis job (not the from/to pickers, which
  // choose tracks and exports); the run's window is shown under the table.
  async function loadHotspots() {
    updateReportLink();
    const body = $("hotspots").querySelector("tbody");
    let doc;
    try {
      doc = await api(`/v1/hotspots?${hotspotQuery()}`);
    } catch (error) {
      if (error.status !== 404) throw error;
      doc = { features: [], meta: null };
    }
    state.hotspots = doc.features;
    state.unit = doc.features.length ? doc.features[0].properties.unit : "";
    if (!doc.meta && state.rangeSet) offerRun();
    else $("run-note").textContent = doc.meta
      ? `${t("run_window")} #${doc.meta.run.id}: ${localTime(doc.meta.run.window_start)} – ${localTime(doc.meta.run.window_end)}`
      : t("no_run");
    state.layers.hotspots.clearLayers();
    body.innerHTML = "";
    if (!doc.features.length) {
      body.innerHTML = `<tr><td colspan="8">${t("no_hotspots")}</td></tr>`;
    }
    doc.features.forEach((feature, index) => {
      const p = feature.properties;
      const layer = L.geoJSON(
        feature,
        geoOptions({ style: { color: labelColor(p.label), weight: 2, fillOpacity: 0.55, fillColor: bandColour(p) } }),
      );
      layer.bindTooltip(`#${index + 1} ${t(`label_${p.label}`)} ${p.level.toFixed(1)} ${unitText(p.unit)}`);
      layer.on("click", () => select(feature));
      layer.addTo(state.layers.hotspots);
      feature._layer = layer;
      const row = document.createElement("tr");
      row.dataset.cell = p.cell;
      row.dataset.id = p.id;
      row.innerHTML =
        `<td><span class="swatch" style="background:${labelColor(p.label)}"></span>${index + 1}</td>` +
        `<td>${escapeHtml(p.street || p.cell)}</td><td>${p.grid_name || "—"}</td><td>${p.level.toFixed(1)}</td>` +
        `<td>${p.enhancement.toFixed(1)}</td><td class="label-${p.label}">${t(`label_${p.label}`)}</td>` +
        `<td>${p.n_passes}</td><td>${p.days}</td>`;
      row.addEventListener("click", () => select(feature));
      body.appendChild(row);
    });
    if (state.selected) {
      // Keep the detail panel on the same cell, with its new figures, grid and language.
      const was = state.selected.properties;
      const same = doc.features.find(
        (f) => f.properties.cell === was.cell && f.properties.stratum === was.stratum && f.properties.pollutant === was.pollutant,
      );
      if (same) select(same);
      else {
        state.selected = null;
        $("detail-body").innerHTML = `<p>${t("pick_hotspot")}</p>`;
      }
    }
    const bounds = L.featureGroup(state.layers.hotspots.getLayers().concat(state.layers.grids.getLayers()));
    if (bounds.getLayers().length && !state.fitted) {
      state.map.fitBounds(bounds.getBounds().pad(0.3), { maxZoom: 16 });
      state.fitted = true;
    }
    if (state.wantedSite != null) await openSite();
  }

  // A shared link's ?site=N: select that place's hotspot, switching to its pollutant once.
  async function openSite() {
    const wanted = state.wantedSite;
    const here = state.hotspots.find((f) => f.properties.site === wanted);
    if (here) {
      state.wantedSite = null;
      select(here);
      return;
    }
    if (state.siteTried) {
      state.wantedSite = null;
      say(t("site_gone"));
      return;
    }
    state.siteTried = true;
    try {
      const site = await api(`/v1/sites/${encodeURIComponent(wanted)}`);
      if (site.pollutant !== $("pollutant").value) {
        $("pollutant").value = site.pollutant;
        await loadHotspots();
        return;
      }
    } catch (error) {
      // an unknown site: said below
    }
    state.wantedSite = null;
    say(t("site_gone"));
  }

  function chart(points, options) {
    // A small inline SVG line chart: points [[x, y]], x numeric (ms), y value.
    if (!points.length) return "<p>—</p>";
    const w = 460;
    const h = 90;
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]).concat(options.reference != null ? [options.reference] : []);
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs) || x0 + 1;
    const y0 = Math.min(...ys);
    const y1 = Math.max(...ys);
    const sx = (x) => 8 + ((x - x0) / (x1 - x0 || 1)) * (w - 16);
    const sy = (y) => h - 8 - ((y - y0) / (y1 - y0 || 1)) * (h - 16);
    const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const dots = options.dots ? points.map((p) => `<circle r="2.5" cx="${sx(p[0])}" cy="${sy(p[1])}"/>`).join("") : "";
    const ref = options.reference != null
      ? `<line class="bg" x1="0" x2="${w}" y1="${sy(options.reference)}" y2="${sy(options.reference)}"/>`
      : "";
    return `<svg class="chart" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">${ref}` +
      `${options.dots ? "" : `<path d="${path}"/>`}${dots}</svg>` +
      `<div class="note">${y0.toFixed(1)} – ${y1.toFixed(1)} ${unitText(state.unit)}</div>`;
  }

  function bars(profile) {
    // The time-of-day profile: one bar per stratum (enhancement; a missing one is empty).
    const order = ["all_day", "lunch", "dinner", "night"];
    const rank = (name) => (order.indexOf(name) < 0 ? order.length : order.indexOf(name));
    const entries = Object.entries(profile).sort((a, b) => rank(a[0]) - rank(b[0]));
    if (!entries.length) return "<p>—</p>";
    const w = 460;
    const h = 90;
    const values = entries.map(([, v]) => (v == null ? 0 : v));
    const top = Math.max(...values.map(Math.abs), 1e-9);
    const step = w / entries.length;
    const zero = h / 2;
    const rects = entries.map(([name, v], i) => {
      const height = ((v == null ? 0 : Math.abs(v)) / top) * (h / 2 - 14);
      const y = v != null && v < 0 ? zero : zero - height;
      return `<rect x="${(i * step + step * 0.2).toFixed(1)}" y="${y.toFixed(1)}" width="${(step * 0.6).toFixed(1)}" height="${height.toFixed(1)}"/>` +
        `<text x="${(i * step + step / 2).toFixed(1)}" y="${h - 2}" text-anchor="middle">${named("stratum", name)} ${v == null ? "—" : v.toFixed(1)}</text>`;
    }).join("");
    return `<svg class="chart profile" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none">` +
      `<line class="bg" x1="0" x2="${w}" y1="${zero}" y2="${zero}"/>${rects}</svg>`;
  }

  // The selected hotspot stands out on the map and is brought into view; the address bar names
  // its site (stable across analysis runs), so the page's link can be shared.
  function highlight(feature) {
    state.hotspots.forEach((f) => {
      if (!f._layer) return;
      const chosen = f === feature;
      f._layer.setStyle({ weight: chosen ? 5 : 2, color: chosen ? "#111" : labelColor(f.properties.label) });
      if (chosen) f._layer.bringToFront();
    });
    if (feature._layer && state.map) {
      const bounds = feature._layer.getBounds();
      if (!state.map.getBounds().contains(bounds)) state.map.fitBounds(bounds.pad(1.5), { maxZoom: 17 });
    }
    const p = feature.properties;
    if (p.site != null && window.history && window.history.replaceState) {
      const query = new URLSearchParams(location.search);
      query.set("pollutant", p.pollutant);
      query.set("site", String(p.site));
      window.history.replaceState(null, "", `${location.pathname}?${query}`);
    }
  }

  async function select(feature) {
    state.selected = feature;
    document.querySelectorAll("#hotspots tbody tr").forEach((row) => {
      row.classList.toggle("selected", row.dataset.id === feature.properties.id);
    });
    highlight(feature);
    const p = feature.properties;
    $("detail-body").innerHTML = `<p>${t("loading")}</p>`;
    try {
      const detail = await api(`/v1/hotspots/${encodeURIComponent(p.id)}?max_passes=500`);
      const evidence = detail.evidence;
      const passes = evidence.passes.map((s) => [Date.parse(s.start), s.value]);
      const found = state.cases.find((c) => c.cell === p.cell && c.pollutant === p.pollutant && c.status !== "closed");
      const interval = p.enhancement_low == null ? "" : ` (${t("interval")} ${p.enhancement_low.toFixed(1)} – ${p.enhancement_high.toFixed(1)})`;
      const band = evidence.band ? `${t("band")}: ${bandText(evidence.band)}` : "";
      const history = evidence.history.length
        ? evidence.history.slice(0, 5).map((h) => `#${h.run_id} ${t(`label_${h.label}`)} ${h.enhancement.toFixed(1)}`).join(" · ")
        : "—";
      $("detail-body").innerHTML =
        `<p><b>${p.cell}</b> · ${p.grid_name || "—"} · <span class="label-${p.label}">${t(`label_${p.label}`)}</span> · ${named("stratum", p.stratum)}<br>` +
        `${p.pollutant === "noise" ? t("level_noise") : t("level")} ${p.level.toFixed(1)} ${unitText(p.unit)} · ${t("enhancement")} ${p.enhancement.toFixed(1)}${interval}<br>` +
        `${t("passes")} ${p.n_passes} · ${t("days")} ${p.days} · ${t("persistence")} ${(p.persistence * 100).toFixed(0)}% · ` +
        `${t("cells")} ${evidence.cells.length}${band ? " · " + band : ""}</p>` +
        `<p class="note">${t("reasons")}: ${p.reasons.map((r) => `<span title="${escapeHtml(r.detail)}">${escapeHtml((r.summary && r.summary[window.EnvI18n.getLang()]) || named("reason", r.code))}</span>`).join(" · ")}</p>` +
        `<h3>${t("profile")}</h3>${bars(evidence.profile)}` +
        `<h3>${t("pass_history")}</h3>${chart(passes, { dots: true })}` +
        `<p class="note">${t("history")}: ${history}</p>` +
        `<div id="case-panel"></div>`;
      renderCase(found || null, feature);
    } catch (error) {
      $("detail-body").innerHTML = `<p class="message">${t("error")}: ${error.message}</p>`;
    }
  }

  // The grid workflow on a case: who it is given to and by when, notes, photos, its history.
  function renderCaseWork(full, panel, token) {
    if (!panel.isConnected || panel.dataset.render !== token) return;  // superseded meanwhile
    const work = document.createElement("div");
    work.className = "case-work";
    const local = (iso) => (iso ? localTime(iso) : "—");
    const due = full.deadline ? full.deadline.slice(0, 10) : "";
    work.innerHTML =
      `<p>${t("assignee")}: <b>${escapeHtml(full.assignee || "—")}</b>` +
      (full.assignee_kind ? ` (${t(`assignee_${full.assignee_kind}`)})` : "") +
      ` · ${t("deadline")}: ${full.deadline ? local(full.deadline) : "—"}` +
      (full.overdue ? ` <span class="overdue">${t("overdue")}</span>` : "") + "</p>" +
      `<div class="case-form"><input id="case-assignee" placeholder="${t("assignee")}" value="${escapeHtml(full.assignee || "")}">` +
      `<select id="case-kind"><option value="department">${t("assignee_department")}</option>` +
      `<option value="grid_worker">${t("assignee_grid_worker")}</option></select>` +
      `<input id="case-deadline" type="date" value="${due}"></div>` +
      `<div class="case-form"><textarea id="case-note" rows="2" placeholder="${t("note")}"></textarea></div>` +
      `<div class="case-form"><label class="file-button">${t("add_photo")}` +
      `<input id="case-photo" type="file" accept="image/jpeg,image/png,image/webp" hidden></label></div>` +
      `<div class="photos"></div><h4>${t("history")}</h4><ol class="timeline"></ol>`;
    panel.appendChild(work);
    if (full.assignee_kind) work.querySelector("#case-kind").value = full.assignee_kind;
    const forms = work.querySelectorAll(".case-form");
    forms[0].appendChild(
      caseButton(t("save"), () => {
        const deadline = work.querySelector("#case-deadline").value;
        return api(`/v1/cases/${full.id}`, {
          method: "PATCH",
          body: {
            assignee: work.querySelector("#case-assignee").value.trim(),
            assignee_kind: work.querySelector("#case-kind").value,
            deadline: deadline ? `${deadline}T23:59:59${zoneOffset(deadline)}` : "",
          },
        });
      }),
    );
    forms[1].appendChild(
      caseButton(t("add_note"), () => {
        const note = work.querySelector("#case-note").value.trim();
        if (!note) return Promise.resolve(full);
        return api(`/v1/cases/${full.id}`, { method: "PATCH", body: { note } });
      }),
    );
    work.querySelector("#case-photo").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (!file) return;
      try {
        const updated = await api(`/v1/cases/${full.id}/photos?name=${encodeURIComponent(file.name)}`, {
          method: "POST",
          body: file,
          headers: { "Content-Type": file.type || "application/octet-stream" },
        });
        await loadCases();
        renderCase(updated, state.selected);
      } catch (error) {
        say(`${t("error")}: ${error.message}`);
      }
    });
    const photos = work.querySelector(".photos");
    full.attachments.forEach((a) => {
      const img = document.createElement("img");
      img.alt = a.name;
      img.title = `${a.name} · ${local(a.uploaded_at)}`;
      photos.appendChild(img);
      api(a.url, { raw: true })
        .then((r) => r.blob())
        .then((blob) => { img.src = URL.createObjectURL(blob); })
        .catch(() => {});
    });
    const timeline = work.querySelector(".timeline");
    full.events.forEach((e) => {
      const item = document.createElement("li");
      const what = e.kind === "status" || e.kind === "verification"
        ? `${t(`event_${e.kind}`)}: ${statusLabel(e.from_status || "")} → ${statusLabel(e.to_status || "")}`
        : t(`event_${e.kind}`);
      const extra = e.kind === "assignment" && e.detail
        ? ` ${escapeHtml(e.detail.assignee || "—")}${e.detail.deadline ? ` · ${t("deadline")} ${local(e.detail.deadline)}` : ""}`
        : e.kind === "attachment" && e.detail ? ` ${escapeHtml(e.detail.name)}` : "";
      item.innerHTML = `<time>${local(e.at)}</time> ${what}${extra}` +
        (e.note ? ` — ${escapeHtml(e.note)}` : "") + ` <span class="actor">${escapeHtml(e.actor)}</span>`;
      timeline.appendChild(item);
    });
  }

  // The feed badge keeps its state, so a change of language re-labels it.
  function setFeed(kind) {
    const feed = $("feed");
    feed.dataset.state = kind;
    feed.textContent = kind === "live" ? `● ${t("live")}` : t(kind);
  }

  // Times in the sub-district's zone ([dashboard] timezone), whatever the browser's.
  function localTime(iso) {
    const zone = (state.config && state.config.timezone) || undefined;
    const locale = window.EnvI18n.getLang() === "zh" ? "zh-CN" : "en-GB";
    return new Date(iso).toLocaleString(locale, { timeZone: zone, hour12: false });
  }

  // The configured zone's UTC offset on a day ("+08:00"), so a date picked on the page means
  // that day in the sub-district, whatever the browser's zone.
  function zoneOffset(day) {
    const zone = (state.config && state.config.timezone) || "UTC";
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
      .formatToParts(new Date(`${day}T12:00:00Z`));
    const name = (parts.find((p) => p.type === "timeZoneName") || {}).value || "GMT";
    const offset = name.replace("GMT", "");
    return offset === "" ? "+00:00" : offset;
  }

  function bandText(band) {
    if (band.category) return named("band", band.category);
    if (band.noise_class != null) {
      const over = band.excess >= 0
        ? t("noise_over", { excess: band.excess.toFixed(1) })
        : t("noise_under", { excess: (-band.excess).toFixed(1) });
      return t("noise_band", { class: band.noise_class, period: named("period", band.period), limit: band.limit, over });
    }
    return "—";
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  function caseButton(label, action) {
    const button = document.createElement("button");
    button.textContent = label;
    button.addEventListener("click", async () => {
      if (!apiKey()) {
        say(t("need_key"));
        return;
      }
      try {
        say("");
        const updated = await action();
        await loadCases();
        renderCase(updated, state.selected);
      } catch (error) {
        say(`${t("error")}: ${error.message}`);
      }
    });
    return button;
  }

  function renderCase(found, feature) {
    const panel = $("case-panel");
    if (!panel) return;
    panel.innerHTML = `<h3>${t("case_for")}</h3>`;
    const buttons = document.createElement("div");
    buttons.className = "buttons";
    if (!found) {
      buttons.appendChild(
        caseButton(t("open_case"), () =>
          api("/v1/cases", {
            method: "POST",
            body: { pollutant: feature.properties.pollutant, cell: feature.properties.cell, hotspot: feature.properties },
          }),
        ),
      );
      panel.appendChild(buttons);
      return;
    }
    const info = document.createElement("p");
    info.innerHTML = `#${found.id} · ${t("status")}: <b>${statusLabel(found.status)}</b>` +
      (found.treated_at ? ` · ${t("treated_at")} ${found.treated_at.slice(0, 10)}` : "");
    panel.appendChild(info);
    const patch = (body) => () => api(`/v1/cases/${found.id}`, { method: "PATCH", body });
    const next = found.allowed_next || [];
    if (next.includes("dispatched")) buttons.appendChild(caseButton(t("dispatch"), patch({ status: "dispatched" })));
    if (next.includes("treated")) {
      // The treatment date: today unless the officer records an earlier one.
      const when = document.createElement("input");
      when.type = "date";
      when.id = "case-treated";
      when.title = t("treated_at");
      buttons.appendChild(when);
      buttons.appendChild(caseButton(t("mark_treated"), () => {
        const body = { status: "treated" };
        if (when.value) body.treated_at = `${when.value}T12:00:00${zoneOffset(when.value)}`;
        return api(`/v1/cases/${found.id}`, { method: "PATCH", body });
      }));
    }
    if (found.status === "treated" || found.status === "verified") {
      buttons.appendChild(caseButton(t("verify"), () => api(`/v1/cases/${found.id}/verify`, { method: "POST" })));
    }
    if (next.includes("closed")) buttons.appendChild(caseButton(t("close"), patch({ status: "closed" })));
    if (next.includes("open")) buttons.appendChild(caseButton(t("reopen"), patch({ status: "open" })));
    panel.appendChild(buttons);
    const v = found.verification;
    const token = String((state.caseRenders = (state.caseRenders || 0) + 1));
    panel.dataset.render = token;
    api(`/v1/cases/${found.id}`)
      .then((full) => renderCaseWork(full, panel, token))
      .catch((error) => say(`${t("error")}: ${error.message}`));
    if (v) {
      const result = document.createElement("p");
      result.className = "note";
      result.textContent =
        `${t("verdict")}: ${named("verdict", v.verdict)} · ${t("change")} ${v.change == null ? "—" : v.change.toFixed(1)} ${unitText(v.unit)} · ` +
        (v.interval_low == null ? "" : `${t("interval")} ${v.interval_low.toFixed(1)} – ${v.interval_high.toFixed(1)} · `) +
        `${t("p_value")} ${v.p_value == null ? "—" : v.p_value.toFixed(3)} · ${v.passes_before}/${v.passes_after} ${t("passes")}`;
      result.title = v.note || "";
      panel.appendChild(result);
    }
  }

  async function loadCases() {
    const doc = await api("/v1/cases?limit=200");
    state.cases = doc.results;
    const list = $("cases");
    list.innerHTML = "";
    const overdueOnly = $("overdue-only") && $("overdue-only").checked;
    doc.results
      .filter((c) => !overdueOnly || c.overdue)
      .forEach((c) => {
        const item = document.createElement("li");
        item.innerHTML = `#${c.id} ${escapeHtml(c.title)} · ${statusLabel(c.status)}` +
          (c.assignee ? ` · ${escapeHtml(c.assignee)}` : "") +
          (c.deadline ? ` · ${t("deadline")} ${localTime(c.deadline)}` : "") +
          (c.overdue ? ` <span class="overdue">${t("overdue")}</span>` : "");
        list.appendChild(item);
      });
  }

  function vehicleIcon(online) {
    return L.divIcon({ className: "", html: `<div class="vehicle-dot ${online ? "online" : "offline"}"></div>`, iconSize: [12, 12] });
  }

  function placeVehicle(vehicle, lat, lon, online, label) {
    if (lat == null || lon == null) return;
    let marker = state.vehicleMarkers.get(vehicle);
    if (!marker) {
      marker = L.marker(toDisplay(lat, lon), { icon: vehicleIcon(online) }).addTo(state.layers.vehicles);
      state.vehicleMarkers.set(vehicle, marker);
    }
    marker.setLatLng(toDisplay(lat, lon));
    marker.setIcon(vehicleIcon(online));
    marker.bindTooltip(label || vehicle);
  }

  async function loadVehicles() {
    const doc = await api("/v1/vehicles");
    const list = $("vehicles");
    list.innerHTML = "";
    state.layers.tracks.clearLayers();
    for (const v of doc.results) {
      const online = v.state === "online" || v.heard_recently;
      const item = document.createElement("li");
      const open = document.createElement("a");
      open.href = "#";
      open.textContent = v.vehicle;
      open.addEventListener("click", (event) => {
        event.preventDefault();
        showVehicle(v.vehicle).catch((error) => say(`${t("error")}: ${error.message}`));
      });
      item.appendChild(open);
      item.appendChild(document.createTextNode(
        ` · ${v.state ? statusWord(v.state) : t("unknown")}` +
        (v.last_time ? ` · ${t("last_fix")} ${localTime(v.last_time)}` : ""),
      ));
      list.appendChild(item);
      placeVehicle(v.vehicle, v.lat, v.lon, online, v.vehicle);
      // The track split where the vehicle went a minute without a fix, so no straight line
      // joins the ends of a gap; the readings on it coloured by the pollutant's scale.
      const params = query({ max_points: 2000, gap_s: 60 });
      params.delete("pollutant");
      api(`/v1/vehicles/${encodeURIComponent(v.vehicle)}/track?${params}`)
        .then((track) => {
          const drawn = L.geoJSON(track, geoOptions({ style: { color: "#495057", weight: 2, opacity: 0.5 } }))
            .addTo(state.layers.tracks);
          // No hotspot, grid or street framed the first view: the first track does.
          const bounds = drawn.getBounds();
          if (!state.fitted && bounds.isValid()) {
            state.map.fitBounds(bounds.pad(0.1), { maxZoom: 16 });
            state.fitted = true;
          }
        })
        .catch(() => {});
      drawValues(v.vehicle).catch(() => {});
    }
    updateLegend();
  }

  // One vehicle: its readings of the pollutant over the period as a time series, and a slider
  // that plays its drive back along the map.
  async function showVehicle(vehicle) {
    const pollutant = $("pollutant").value;
    const params = query({ vehicle, format: "geojson", limit: 5000 });
    params.delete("pollutant");
    const response = await api(`/v1/readings?${params}`, { raw: true });
    const doc = await response.json();
    const points = doc.features
      .filter((f) => f.geometry && f.properties.values && f.properties.values[pollutant] != null)
      .map((f) => ({
        time: Date.parse(f.properties.time),
        value: f.properties.values[pollutant],
        lat: f.geometry.coordinates[1],
        lon: f.geometry.coordinates[0],
      }));
    state.selected = null;
    const body = $("detail-body");
    const unit = unitText(state.pollutants[pollutant].unit);
    body.innerHTML = `<h3>${escapeHtml(vehicle)}</h3>` +
      `<p>${points.length} ${t("readings")} · ${escapeHtml(state.pollutants[pollutant][window.EnvI18n.getLang() === "zh" ? "label_zh" : "label"])} (${unit})</p>` +
      chart(points.map((p) => [p.time, p.value]), {}) +
      `<label class="playback">${t("playback")} <input id="playback" type="range" min="0" max="${Math.max(points.length - 1, 0)}" value="0"></label>` +
      `<p id="playback-at" class="note"></p>`;
    if (!points.length) return;
    const marker = L.circleMarker(toDisplay(points[0].lat, points[0].lon), { radius: 8, color: "#111", weight: 3 })
      .addTo(state.layers.tracks);
    const scale = scaleOf(pollutant);
    const show = (i) => {
      const p = points[i];
      marker.setLatLng(toDisplay(p.lat, p.lon));
      marker.setStyle({ fillColor: scale ? colourFor(scale, p.value) : "#1c7ed6", fillOpacity: 0.9 });
      $("playback-at").textContent = `${localTime(new Date(p.time).toISOString())} · ${p.value.toFixed(1)} ${unit}`;
    };
    $("playback").addEventListener("input", (event) => show(Number(event.target.value)));
    show(0);
    state.map.fitBounds(L.latLngBounds(points.map((p) => toDisplay(p.lat, p.lon))).pad(0.1));
  }

  // A hotspot is filled with its level's colour on the pollutant's scale (HJ 633 / GB 3096) and
  // outlined in its label's colour; a channel without a standard is filled like its outline.
  function bandColour(p) {
    const scale = scaleOf(p.pollutant);
    return scale ? colourFor(scale, p.level) : labelColor(p.label);
  }

  function scaleOf(pollutant) {
    const p = state.pollutants && state.pollutants[pollutant];
    return p && p.scale ? p.scale : null;
  }

  function colourFor(scale, value) {
    const step = scale.find((s) => s.upper == null || value <= s.upper);
    return step ? step.colour : scale[scale.length - 1].colour;
  }

  async function drawValues(vehicle) {
    const pollutant = $("pollutant").value;
    const scale = scaleOf(pollutant);
    const params = query({ vehicle, format: "geojson", limit: 3000 });
    params.delete("pollutant");
    const response = await api(`/v1/readings?${params}`, { raw: true });
    const doc = await response.json();
    doc.features.forEach((f) => {
      const value = f.properties.values && f.properties.values[pollutant];
      if (value == null || !f.geometry) return;
      const [lon, lat] = f.geometry.coordinates;
      L.circleMarker(toDisplay(lat, lon), {
        radius: 3,
        weight: 0,
        fillOpacity: 0.85,
        fillColor: scale ? colourFor(scale, value) : "#1c7ed6",
      })
        .bindTooltip(`${value.toFixed(1)} ${unitText(state.pollutants[pollutant].unit)}`)
        .addTo(state.layers.tracks);
    });
  }

  // The legend: the hotspot labels, and the track's colour scale in the pollutant's unit.
  function updateLegend() {
    const legend = document.getElementById("map-legend");
    if (!legend) return;
    const pollutant = $("pollutant").value;
    const scale = scaleOf(pollutant);
    let html = legendHtml();
    if (scale) {
      const unit = unitText(state.pollutants[pollutant].unit);
      let lower = 0;
      html += "<br>" + scale.map((step) => {
        const range = step.upper == null ? `> ${lower}` : `${lower}–${step.upper}`;
        lower = step.upper;
        return `<span class="swatch" style="background:${step.colour}"></span>${named("band", step.category)} ${range}`;
      }).join(" ") + ` ${unit}`;
    }
    legend.innerHTML = html;
  }

  function statusWord(value) {
    return value === "online" ? t("online") : value === "offline" ? t("offline") : value;
  }

  // Server-sent events over fetch (so the API key can go in a header, unlike EventSource).
  async function followLive() {
    if (!state.config.live) {
      setFeed("polling");
      setInterval(() => loadVehicles().catch(() => {}), 30000);
      return;
    }
    for (;;) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (apiKey()) headers["X-API-Key"] = apiKey();
        const response = await fetch("/v1/live", { headers });
        if (!response.ok || !response.body) throw new Error(String(response.status));
        setFeed("live");
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
          }
        }
      } catch (_) {
        setFeed("polling");
      }
      await new Promise((resolve) => setTimeout(resolve, 5000));
      loadVehicles().catch(() => {});
    }
  }

  function handleEvent(block) {
    let kind = "message";
    const data = [];
    block.split("\n").forEach((line) => {
      if (line.startsWith("event:")) kind = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trim());
    });
    if (!data.length) return;
    const doc = JSON.parse(data.join("\n"));
    if (kind === "position") placeVehicle(doc.vehicle, doc.lat, doc.lon, true, `${doc.vehicle} ${doc.time}`);
    if (kind === "hotspot") {
      toast(`${t("new_hotspot")}: ${doc.pollutant} · ${t(`label_${doc.label}`)} · ${named("stratum", doc.stratum)} · ${doc.level.toFixed(1)} ${unitText(doc.unit)}`);
      loadHotspots().catch(() => {});
    }
    if (kind === "status") {
      const marker = state.vehicleMarkers.get(doc.vehicle);
      if (marker) marker.setIcon(vehicleIcon(doc.state === "online"));
    }
  }

  function toast(text) {
    const item = document.createElement("div");
    item.className = "toast";
    item.textContent = text;
    item.addEventListener("click", () => item.remove());
    $("toasts").appendChild(item);
    setTimeout(() => item.remove(), 15000);
  }

  async function download(format) {
    const params = query({ format, limit: 1000000 });
    params.delete("pollutant");
    try {
      const response = await api(`/v1/readings?${params}`, { raw: true });
      const blob = await response.blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `envpatrol-readings.${format === "csv" ? "csv" : "geojson"}`;
      document.body.appendChild(link);
      link.click();
      setTimeout(() => {
        URL.revokeObjectURL(link.href);
        link.remove();
      }, 1000);
    } catch (error) {
      say(`${t("error")}: ${error.message}`);
    }
  }

  // A report opened from a plain link cannot send the API key (a header): with a key, the
  // report is fetched here, with the key, and shown in the new tab from memory.
  function openReport(event) {
    if (!apiKey()) return; // the plain link: this server lets reads through without a key
    event.preventDefault();
    const tab = window.open("", "_blank"); // opened now, while the click counts as the user's
    api(event.currentTarget.getAttribute("href"), { raw: true, headers: { Accept: "text/html" } })
      .then((response) => response.text())
      .then((html) => {
        const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
        if (tab) tab.location.href = url;
        else window.location.href = url;
      })
      .catch((error) => {
        if (tab) tab.close();
        say(`${t("error")}: ${error.message}`);
      });
  }

  // Management grids: a GeoJSON FeatureCollection whose features carry name and responsible.
  async function uploadGrids(file) {
    if (!apiKey()) {
      say(t("need_key"));
      return;
    }
    try {
      const doc = JSON.parse(await file.text());
      const saved = await api("/v1/grids", { method: "POST", body: doc });
      await loadGrids();
      await loadHotspots();
      say("");
      $("feed").textContent = `${t("grids_uploaded")}: ${saved.meta.found}`;
    } catch (error) {
      say(`${t("error")}: ${error.message}`);
    }
  }

  async function refresh() {
    say("");
    localStorage.setItem("envpatrol.pollutant", $("pollutant").value);
    try {
      await loadGrids();
      await Promise.all([loadHotspots(), loadCases(), loadVehicles()]);
      document.body.dataset.loaded = "true";
    } catch (error) {
      say(`${t("error")}: ${error.message}`);
    }
  }

  async function start() {
    applyLabels();
    $("api-key").value = apiKey();
    $("api-key").addEventListener("change", (e) => {
      localStorage.setItem("envpatrol.key", e.target.value.trim());
      refresh();
    });
    const now = new Date();
    $("to").value = toInput(now);
    $("from").value = toInput(new Date(now.getTime() - 30 * 86400000));
    const params = new URLSearchParams(location.search);
    if (params.get("from")) $("from").value = toInput(new Date(params.get("from")));
    if (params.get("to")) $("to").value = toInput(new Date(params.get("to")));
    ["from", "to"].forEach((id) =>
      $(id).addEventListener("change", () => {
        state.rangeSet = true;
        refresh();
      }),
    );
    if (/^[0-9]+$/.test(params.get("site") || "")) state.wantedSite = Number(params.get("site"));
    state.config = await (await fetch("/dashboard/config.json")).json();
    initMap();
    mapNote();
    loadStreets().catch(() => {});
    try {
      await loadPollutants();
    } catch (error) {
      say(`${t("error")}: ${error.message}`);
    }
    if (params.get("pollutant")) $("pollutant").value = params.get("pollutant");
    $("refresh").addEventListener("click", refresh);
    $("overdue-only").addEventListener("change", () => loadCases().catch((e) => say(e.message)));
    $("drawer").addEventListener("click", () => {
      document.querySelector("main").classList.toggle("drawer-open");
      state.map.invalidateSize();
    });
    $("pollutant").addEventListener("change", refresh);
    ["grid", "label", "stratum"].forEach((id) =>
      $(id).addEventListener("change", () => loadHotspots().catch((e) => say(e.message))),
    );
    $("export-csv").addEventListener("click", () => download("csv"));
    $("report-link").addEventListener("click", openReport);
    $("export-geojson").addEventListener("click", () => download("geojson"));
    const hotspotFile = (format) => async () => {
      try {
        const query = hotspotQuery();
        query.set("format", format);
        query.set("limit", "1000");
        const response = await api(`/v1/hotspots?${query}`, { raw: true });
        const link = document.createElement("a");
        link.href = URL.createObjectURL(await response.blob());
        link.download = `envpatrol-hotspots.${format}`;
        document.body.appendChild(link);
        link.click();
        link.remove();
      } catch (error) {
        say(`${t("error")}: ${error.message}`);
      }
    };
    $("export-hotspots").addEventListener("click", hotspotFile("csv"));
    $("export-hotspots-xlsx").addEventListener("click", hotspotFile("xlsx"));
    $("grid-file").addEventListener("change", (e) => {
      if (e.target.files.length) uploadGrids(e.target.files[0]);
      e.target.value = "";
    });
    $("lang").addEventListener("click", async () => {
      window.EnvI18n.setLang(window.EnvI18n.getLang() === "zh" ? "en" : "zh");
      applyLabels();
      mapNote();
      if ($("feed").dataset.state) setFeed($("feed").dataset.state);
      updateLegend();
      const current = $("pollutant").value;
      await loadPollutants();
      $("pollutant").value = current;
      refresh();
    });
    await refresh();
    followLive();
  }

  window.EnvDashboard = { state, toDisplay, labelColor, toast };
  document.addEventListener("DOMContentLoaded", start);
})();

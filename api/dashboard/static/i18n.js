// Labels in Chinese and English; the page uses t(key). Keys missing in one language fall back
// to English, so a new label shows up (in English) rather than disappearing.
"use strict";
(function (root) {
  const LABELS = {
    en: {
      title: "envpatrol · pollution hotspots",
      pollutant: "Pollutant",
      from: "From",
      to: "To",
      grid: "Grid",
      all_grids: "All grids",
      refresh: "Refresh",
      export_csv: "Export CSV",
      export_geojson: "Export GeoJSON",
      upload_grids: "Upload grids (GeoJSON)",
      grids_uploaded: "Grids saved",
      api_key: "API key",
      key_placeholder: "ep_… (needed for cases)",
      hotspots: "Hotspots",
      rank: "#",
      cell: "Cell",
      level: "Level",
      enhancement: "Enhancement",
      z: "z",
      passes: "Passes",
      days: "Days",
      persistence: "Persistence",
      no_hotspots: "No hotspots in this period.",
      detail: "Detail",
      pick_hotspot: "Pick a hotspot on the map or in the table.",
      series: "Hourly mean",
      pass_history: "Pass means",
      background: "Background",
      vehicles: "Vehicles",
      online: "online",
      offline: "offline",
      unknown: "unknown",
      last_fix: "last fix",
      cases: "Cases",
      open_case: "Open a case",
      dispatch: "Dispatch",
      mark_treated: "Mark treated",
      verify: "Verify (before/after)",
      close: "Close",
      reopen: "Reopen",
      status: "Status",
      note: "Note",
      verdict: "Verdict",
      indicative:
        "Indicative values from mobile monitoring, not compliance values (GB 3095-2012 applies to fixed sites).",
      loading: "Loading…",
      error: "Error",
      need_key: "An admin API key is needed for this.",
      live: "live",
      polling: "polling",
      tiles_none: "No base map (offline)",
      gcj_mode: "GCJ-02 base map: shapes shifted for display",
      language: "中文",
      case_for: "Case",
      treated_at: "Treated",
      p_value: "p",
      change: "Change",
    },
    zh: {
      title: "envpatrol · 污染热点",
      pollutant: "污染物",
      from: "开始",
      to: "结束",
      grid: "网格",
      all_grids: "全部网格",
      refresh: "刷新",
      export_csv: "导出 CSV",
      export_geojson: "导出 GeoJSON",
      upload_grids: "上传网格（GeoJSON）",
      grids_uploaded: "网格已保存",
      api_key: "API 密钥",
      key_placeholder: "ep_…（处理案件需要）",
      hotspots: "热点",
      rank: "序号",
      cell: "网格单元",
      level: "浓度",
      enhancement: "超出背景",
      z: "z 值",
      passes: "经过次数",
      days: "天数",
      persistence: "持续性",
      no_hotspots: "该时段无热点。",
      detail: "详情",
      pick_hotspot: "在地图或表格中选择一个热点。",
      series: "小时均值",
      pass_history: "每次经过均值",
      background: "背景值",
      vehicles: "巡查车辆",
      online: "在线",
      offline: "离线",
      unknown: "未知",
      last_fix: "最后定位",
      cases: "案件",
      open_case: "立案",
      dispatch: "派遣",
      mark_treated: "标记已处置",
      verify: "核查（处置前后对比）",
      close: "结案",
      reopen: "重新打开",
      status: "状态",
      note: "备注",
      verdict: "结论",
      indicative: "移动监测的参考值，并非达标判定值（GB 3095-2012 适用于固定站点）。",
      loading: "加载中…",
      error: "错误",
      need_key: "此操作需要管理员 API 密钥。",
      live: "实时",
      polling: "轮询",
      tiles_none: "无底图（离线）",
      gcj_mode: "GCJ-02 底图：仅为显示而偏移坐标",
      language: "English",
      case_for: "案件",
      treated_at: "处置时间",
      p_value: "p 值",
      change: "变化",
    },
  };
  const STATUS = {
    en: { open: "open", dispatched: "dispatched", treated: "treated", verified: "verified", closed: "closed" },
    zh: { open: "待处理", dispatched: "已派遣", treated: "已处置", verified: "已核查", closed: "已结案" },
  };
  let lang = (root.localStorage && root.localStorage.getItem("envpatrol.lang")) || "zh";

  function t(key) {
    return (LABELS[lang] && LABELS[lang][key]) || LABELS.en[key] || key;
  }
  function status(name) {
    return (STATUS[lang] && STATUS[lang][name]) || name;
  }
  function setLang(next) {
    lang = next === "en" ? "en" : "zh";
    if (root.localStorage) root.localStorage.setItem("envpatrol.lang", lang);
  }
  function getLang() {
    return lang;
  }
  root.EnvI18n = { t, status, setLang, getLang, LABELS };
})(typeof window !== "undefined" ? window : globalThis);

// WGS-84 -> GCJ-02, for drawing on Chinese base maps only (the same formula as api/datum.py,
// whose unit tests check it against the reference figures). Stored data stay WGS-84.
"use strict";
(function (root) {
  const A = 6378245.0;
  const EE = 0.00669342162296594323;

  function outsideChina(lon, lat) {
    return !(lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271);
  }

  function shiftLat(x, y) {
    let out = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    out += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
    out += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
    out += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320.0 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
    return out;
  }

  function shiftLon(x, y) {
    let out = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    out += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
    out += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
    out += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
    return out;
  }

  // Returns [lon, lat] in GCJ-02.
  function wgs84ToGcj02(lon, lat) {
    if (outsideChina(lon, lat)) return [lon, lat];
    let dlat = shiftLat(lon - 105.0, lat - 35.0);
    let dlon = shiftLon(lon - 105.0, lat - 35.0);
    const radlat = (lat / 180.0) * Math.PI;
    const magic = 1 - EE * Math.sin(radlat) * Math.sin(radlat);
    const sqrtmagic = Math.sqrt(magic);
    dlat = (dlat * 180.0) / (((A * (1 - EE)) / (magic * sqrtmagic)) * Math.PI);
    dlon = (dlon * 180.0) / ((A / sqrtmagic) * Math.cos(radlat) * Math.PI);
    return [lon + dlon, lat + dlat];
  }

  // The inverse by fixed-point iteration: for turning a clicked map point back into WGS-84.
  function gcj02ToWgs84(lon, lat) {
    let wlon = lon;
    let wlat = lat;
    for (let i = 0; i < 6; i++) {
      const g = wgs84ToGcj02(wlon, wlat);
      wlon += lon - g[0];
      wlat += lat - g[1];
    }
    return [wlon, wlat];
  }

  root.EnvDatum = { wgs84ToGcj02, gcj02ToWgs84, outsideChina };
})(typeof window !== "undefined" ? window : globalThis);

// Node-RED settings for the ingest benchmark: no editor, no credentials file, `pg` handed to
// function nodes through functionGlobalContext (node-red-contrib-postgresql is not available).
module.exports = {
    flowFile: "flow.json",
    uiPort: Number(process.env.NODERED_PORT || 1880),
    uiHost: "127.0.0.1",
    httpAdminRoot: false,
    credentialSecret: false,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    functionGlobalContext: { pg: require("pg") },
    functionExternalModules: false,
};

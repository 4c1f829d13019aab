// @ts-check
/**
 * The layers of agent/, lowest first. A folder may import its own layer's folder and any
 * folder of a lower layer, never a higher one, and two folders of one layer never import
 * each other: so no import cycle between folders is possible, and the data-flow direction
 * format/otlp → store → pipeline/sealing → delivery/plugins → service → cli holds.
 * Type-only imports count too. docs/architecture.md explains each layer.
 * Run by `npm run lint` (and so by CI): `depcruise agent`.
 */
const LAYERS = [
  ["common"],
  ["telemetry"],
  ["integrity"],
  ["otlp"],
  ["store"],
  ["processing", "sealing"],
  ["receivers"],
  ["exporters"],
  ["verify"],
  ["config"],
  // The witness (audit-agent witness) is a server of its own beside the agent: it uses
  // common, telemetry, integrity and config's YAML helpers; only cli imports it.
  ["service", "witness"],
  ["cli"],
];
/** Exporter plugins: each is one folder; they share only exporters/*.ts and exporters/http/. */
const PLUGINS = ["file", "loki", "s3", "elasticsearch", "otlp"];

const layerRules = LAYERS.flatMap((layer, i) =>
  layer.map((folder) => {
    const above = LAYERS.slice(i + 1).flat();
    const siblings = layer.filter((f) => f !== folder);
    const forbidden = [...above, ...siblings];
    return {
      name: `layer-${folder}`,
      severity: /** @type {const} */ ("error"),
      comment: `agent/${folder}/ may not import ${forbidden.join(", ")}: they are above it (or beside it) in the layering (docs/architecture.md)`,
      from: { path: `^agent/${folder}/` },
      to: { path: `^agent/(${forbidden.join("|")})/` },
    };
  }),
);

const pluginRules = PLUGINS.map((plugin) => ({
  name: `plugin-${plugin}-isolated`,
  severity: /** @type {const} */ ("error"),
  comment: `the ${plugin} exporter imports no other exporter plugin: shared code lives in exporters/*.ts or exporters/http/`,
  from: { path: `^agent/exporters/${plugin}/` },
  to: { path: `^agent/exporters/(${PLUGINS.filter((p) => p !== plugin).join("|")})/` },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    ...layerRules,
    ...pluginRules,
    {
      name: "plugin-api-knows-no-plugin",
      severity: "error",
      comment: "the plugin API and the delivery engine are written against the API, not a plugin",
      from: { path: "^agent/exporters/[^/]+\\.ts$" },
      to: { path: `^agent/exporters/(${PLUGINS.join("|")})/` },
    },
    {
      name: "no-circular",
      severity: "error",
      comment:
        "modules import each other in a cycle (a plugin's descriptor importing its code on first use, with import(), is the one allowed way back)",
      from: { path: "^agent/" },
      to: { circular: true, viaOnly: { dependencyTypesNot: ["dynamic-import"] } },
    },
    {
      name: "not-to-unresolvable",
      severity: "error",
      from: { path: "^agent/" },
      to: { couldNotResolve: true },
    },
    {
      name: "not-to-dev-dep",
      severity: "error",
      comment: "agent code runs in production: it may not import a devDependency",
      from: { path: "^agent/" },
      to: { dependencyTypes: ["npm-dev"] },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
    },
  },
};

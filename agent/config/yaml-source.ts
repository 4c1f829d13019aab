import YAML, { LineCounter } from "yaml";
import { type ExpandIssue, expandEnv, type TypedReference } from "./expand.js";
import { type ConfigProblems, dotted } from "./parse-problems.js";

/**
 * The first two steps of reading a YAML config file, shared by the agent's config
 * (load.ts) and the witness's: the document with its positions, then its values with
 * ${env:…} references expanded.
 */

/**
 * The document, or a `file:line:col: …` problem for each syntax error and duplicate key
 * (the caller throws its own error with them).
 */
export function parseYamlDocument(
  text: string,
  file: string,
): { doc: YAML.Document.Parsed; lineCounter: LineCounter; problems: string[] } {
  const lineCounter = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, uniqueKeys: true });
  const problems = doc.errors.map((e) => {
    if (e.code === "DUPLICATE_KEY") {
      // The parser may point at the end of the entry before: move on to the key and name it.
      let at = e.pos[0];
      while (at < text.length && /[\s#]/.test(text[at] as string))
        at = text[at] === "#" ? text.indexOf("\n", at) >>> 0 : at + 1;
      const key = /^[^:\n]*/.exec(text.slice(at))?.[0].trim();
      const pos = lineCounter.linePos(at);
      return `${file}:${pos.line}:${pos.col}: duplicate key "${key}": a key may appear once in a mapping, so merge the two entries`;
    }
    const pos = e.linePos?.[0];
    return `${file}${pos ? `:${pos.line}:${pos.col}` : ""}: not valid YAML: ${e.message.split("\n")[0]}`;
  });
  return { doc, lineCounter, problems };
}

/**
 * The document as plain values with ${env:…} references expanded (expand.ts), reporting
 * unsupported references as problems and unset variables as warnings.
 */
export function expandVariables(
  doc: YAML.Document.Parsed,
  env: Record<string, string | undefined>,
  report: ConfigProblems,
): { expanded: unknown; typedRefs: TypedReference[] } {
  const raw: unknown = doc.toJS() ?? {};
  const expandIssues: ExpandIssue[] = [];
  const typedRefs: TypedReference[] = [];
  const expanded = expandEnv(raw, env, expandIssues, [], typedRefs);
  for (const i of expandIssues) {
    if (i.fatal) report.add(i.path, i.message);
    else report.warnings.push(`${dotted(i.path)}: ${i.message}`);
  }
  return { expanded, typedRefs };
}

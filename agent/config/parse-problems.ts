import YAML, { type LineCounter } from "yaml";

/**
 * The problems and warnings parseConfig (load.ts) finds in one config file. A problem is
 * reported as `file:line:col: key.path: what is wrong`, located at the YAML node of its path
 * (or the nearest one above it that is written), so that all of them can be fixed in one go.
 */

/** A key path in the config: mapping keys and list indexes. */
export type Path = (string | number)[];

/** A path as the problems spell it: `service.pipelines.logs.receivers[0]`. */
export function dotted(path: Path): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

export class ConfigProblems {
  readonly problems: string[] = [];
  /** Non-fatal findings (unset env vars, unused components). */
  readonly warnings: string[] = [];

  constructor(
    private readonly file: string,
    private readonly doc: YAML.Document.Parsed,
    private readonly lineCounter: LineCounter,
    /** Where the settings are documented, for the unknown-key hint. */
    private readonly reference = "docs/configuration.md",
  ) {}

  /** Reports `message` about the setting at `path`. */
  add(path: Path, message: string): void {
    this.problems.push(`${this.where(path)}: ${path.length ? `${dotted(path)}: ` : ""}${message}`);
  }

  /** Reports a key of the mapping at `parent` that no setting has. */
  unknownKey(parent: Path, key: string): void {
    this.problems.push(
      `${this.whereKey(parent, key)}: ${dotted([...parent, key])}: unknown key "${key}": check the spelling against ${this.reference}`,
    );
  }

  /** `file:line:col` of the node at `path`, or of the nearest one above it that is written. */
  private where(path: Path): string {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as
        { range?: [number, number, number] } | undefined;
      if (node?.range) {
        const pos = this.lineCounter.linePos(node.range[0]);
        return `${this.file}:${pos.line}:${pos.col}`;
      }
    }
    return this.file;
  }

  /** Where a mapping key itself is written (for unknown keys), else where its mapping is. */
  private whereKey(parent: Path, key: string): string {
    const node = parent.length ? this.doc.getIn(parent, true) : this.doc.contents;
    if (YAML.isMap(node)) {
      for (const pair of node.items) {
        if (YAML.isScalar(pair.key) && pair.key.value === key && pair.key.range) {
          const pos = this.lineCounter.linePos(pair.key.range[0]);
          return `${this.file}:${pos.line}:${pos.col}`;
        }
      }
    }
    return this.where(parent);
  }
}

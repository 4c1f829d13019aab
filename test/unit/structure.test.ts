import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/**
 * Structure rules the linter cannot express (layering and function length are checked by
 * dependency-cruiser and eslint in `npm run lint`): no class is a god object.
 */
const MAX_PUBLIC_MEMBERS = 13;
/** Classes allowed more, each with the reason. */
const ALLOWED: Record<string, string> = {
  // A struct the protobuf fast path fills field by field for each record; module-private.
  "otlp/protobuf-canonical.ts:WireLogRecord": "hot-path wire view of one LogRecord",
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(join(dir, e.name))
      : e.name.endsWith(".ts")
        ? [join(dir, e.name)]
        : [],
  );
}

function publicInstanceMembers(node: ts.ClassDeclaration): string[] {
  const names: string[] = [];
  for (const m of node.members) {
    if (ts.isConstructorDeclaration(m) || ts.isClassStaticBlockDeclaration(m)) continue;
    const flags = ts.getCombinedModifierFlags(m as ts.Declaration);
    if (flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected | ts.ModifierFlags.Static))
      continue;
    const name = m.name?.getText() ?? "";
    if (name.startsWith("#") || names.includes(name)) continue; // a get/set pair is one member
    names.push(name);
  }
  // Constructor parameter properties (`readonly x`) are members too.
  for (const m of node.members) {
    if (!ts.isConstructorDeclaration(m)) continue;
    for (const p of m.parameters) {
      const flags = ts.getCombinedModifierFlags(p);
      if (ts.isParameterPropertyDeclaration(p, m) && !(flags & ts.ModifierFlags.Private))
        names.push(p.name.getText());
    }
  }
  return names;
}

describe("structure", () => {
  it(`has no class with more than ${MAX_PUBLIC_MEMBERS} public members in agent/`, () => {
    const tooBig: string[] = [];
    for (const file of sourceFiles("agent")) {
      const sf = ts.createSourceFile(
        file,
        readFileSync(file, "utf8"),
        ts.ScriptTarget.Latest,
        true,
      );
      const visit = (node: ts.Node) => {
        if (ts.isClassDeclaration(node) && node.name) {
          const id = `${file.slice("agent/".length)}:${node.name.text}`;
          const members = publicInstanceMembers(node);
          if (members.length > MAX_PUBLIC_MEMBERS && !ALLOWED[id])
            tooBig.push(`${id} has ${members.length}: ${members.join(", ")}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
    }
    expect(tooBig).toEqual([]);
  });

  it("finds the classes it checks (a check that sees nothing proves nothing)", () => {
    const text = readFileSync("agent/store/chain-log.ts", "utf8");
    const sf = ts.createSourceFile("x.ts", text, ts.ScriptTarget.Latest, true);
    const log = sf.statements.find(
      (s): s is ts.ClassDeclaration => ts.isClassDeclaration(s) && s.name?.text === "ChainLog",
    );
    expect(log).toBeDefined();
    expect(publicInstanceMembers(log as ts.ClassDeclaration)).toContain("append");
    expect(publicInstanceMembers(log as ts.ClassDeclaration)).not.toContain("flush");
  });
});

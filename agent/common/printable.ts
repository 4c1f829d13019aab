/**
 * Attacker-controlled text made safe to print to a terminal, to log, or to put in a file a
 * person may `cat`: what a terminal would act on or a reader would take for the end of a
 * line is shown as its JSON escape `\uXXXX` (each UTF-16 unit, so the text stays
 * JSON-readable). That is the C0 and C1 controls (ESC, CSI U+009B, NEL U+0085), format
 * characters (bidi overrides, zero-width and invisible ones), line and paragraph separators,
 * and lone surrogates. Left as they are, an escape sequence in a record, a bundle or a
 * client's header could move the cursor and overwrite a verdict ("INVALID" becomes "VALID")
 * or forge a log line, and a bidi override could make text read backwards.
 */
// U+2060-206F whole: the invisible-operator and bidi-isolate block, its unassigned U+2065
// included (not a format character today, and a later Unicode may make it one).
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u2060-\u206f]/gu;

/** What printable leaves as it is: tabs (by default) and newlines (not by default). */
export interface Kept {
  tab?: boolean;
  newlines?: boolean;
}

/** `text` with its unprintable characters escaped, but for the tabs and newlines `keep` keeps. */
export function printable(text: string, keep: Kept = { tab: true }): string {
  return text.replace(UNPRINTABLE, (c) =>
    (c === "\t" && keep.tab) || (c === "\n" && keep.newlines) ? c : jsonEscape(c),
  );
}

function jsonEscape(c: string): string {
  let out = "";
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`;
  return out;
}

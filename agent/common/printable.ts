/**
 * Attacker-controlled text made safe to print to a terminal or put in a file a person may
 * `cat`: control characters (C0, DEL, C1) and the Unicode bidirectional and invisible
 * formatting marks (all but tab) are shown as `\u001b`-style escapes. Left as they are, an escape sequence
 * in a record or a bundle could move the cursor and overwrite a verdict ("INVALID" becomes
 * "VALID"), and a bidi override could make text read backwards.
 */

const UNPRINTABLE =
  // eslint-disable-next-line no-control-regex -- the control characters are what it finds
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;
const UNPRINTABLE_LINE =
  // eslint-disable-next-line no-control-regex -- as above, newline included
  /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

const escape = (c: string) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`;

/** `text` with its unprintable characters escaped; newlines too unless `keepNewlines`. */
export function printable(text: string, keepNewlines = false): string {
  return text.replace(keepNewlines ? UNPRINTABLE : UNPRINTABLE_LINE, escape);
}

/**
 * What a chat body holds besides plain text: @mentions and web links. Pure functions,
 * so the page and its tests share them.
 *
 * Mentions follow PROTOCOL.md v1.1 "Mentions in any script", like the server's
 * rooms/services/messages.py resolve_mentions: `@` not preceded by an ASCII letter or
 * digit, then the longest known name that the text after it starts with.
 */

// A username character as Django allows it (`[\w.@+-]`, Python's Unicode \w), without
// `@`, which starts the next mention. Python's \w is letters, numbers and underscore.
export const NAME_CHAR = "[\\p{L}\\p{N}_.+\\-]";
const NAME_RUN = new RegExp(`^${NAME_CHAR}{1,150}`, "u");
const ASCII_ALNUM = /[A-Za-z0-9]/;

/**
 * Mentions in `text` of the names in `names` (a Set or array), in order:
 * [{start, end, name}], `start` at the `@`.
 */
export function findMentions(text, names) {
  const known = names instanceof Set ? names : new Set(names);
  const found = [];
  if (!known.size) return found;
  const value = String(text);
  for (let at = value.indexOf("@"); at !== -1; at = value.indexOf("@", at + 1)) {
    if (at > 0 && ASCII_ALNUM.test(value[at - 1])) continue;
    const run = NAME_RUN.exec(value.slice(at + 1))?.[0];
    if (!run) continue;
    // Longest first; the run is counted in code points, like Python's str.
    const chars = [...run];
    for (let n = chars.length; n > 0; n -= 1) {
      const name = chars.slice(0, n).join("");
      if (known.has(name)) {
        found.push({ start: at, end: at + 1 + name.length, name });
        at += name.length;
        break;
      }
    }
  }
  return found;
}

// A link runs to the next space; punctuation that ends a sentence is not part of it.
const LINK = /\bhttps?:\/\/[^\s<>"]+/giu;
const TRAILING = /[.,!?;:'"’”)\]}。，！？；：、）」』】》]+$/u;

/** The http(s) URL `candidate` names, or null (other schemes never become links). */
export function safeUrl(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * A body as pieces: {text} for plain text, {text, mention: name}, {text, href}.
 * `names`: who the message mentions (the server resolved them).
 */
export function tokenize(body, names = []) {
  const text = String(body ?? "");
  const pieces = [];
  const plain = (segment) => {
    let last = 0;
    for (const m of findMentions(segment, names)) {
      if (m.start > last) pieces.push({ text: segment.slice(last, m.start) });
      pieces.push({ text: segment.slice(m.start, m.end), mention: m.name });
      last = m.end;
    }
    if (last < segment.length) pieces.push({ text: segment.slice(last) });
  };
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    const raw = match[0].replace(TRAILING, "");
    const href = safeUrl(raw);
    if (!href) continue;
    plain(text.slice(last, match.index));
    pieces.push({ text: raw, href });
    last = match.index + raw.length;
  }
  plain(text.slice(last));
  return pieces.filter((piece) => piece.text !== "");
}

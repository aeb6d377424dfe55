/**
 * Room emotes: `:code:` in a message body shown as the room's image, on the page and in
 * the overlay. A message carries the emotes it uses (`emotes: [{code, url}]`, PROTOCOL
 * docs/protocol.md), so nothing is looked up per line.
 *
 * Images are <img> elements with the code as their alt text; the body around them stays
 * text nodes. Nothing here parses markup.
 */

// As the server's rooms/services/emotes.py CODE_IN_TEXT_RE: the closing colon is
// looked ahead at, so that it may open the next code (`:a::b:`, `:gg:pog:`).
const CODE_IN_TEXT = /:([A-Za-z0-9_]{2,32})(?=:)/g;

/** Only the server's own paths: an event can never point an <img> at another site. */
function ownPath(url) {
  return typeof url === "string" && url.startsWith("/") && !url.startsWith("//") && !url.includes("\\");
}

/** {code: url} of a message's emotes, leaving out anything malformed. */
export function emoteMap(emotes) {
  const map = new Map();
  for (const emote of Array.isArray(emotes) ? emotes : []) {
    if (typeof emote?.code === "string" && ownPath(emote.url)) map.set(emote.code, emote.url);
  }
  return map;
}

/**
 * `text` split into pieces: {text} and {code, url}, in order. Pure, for the tests and
 * for both renderers.
 */
export function splitEmotes(text, emotes) {
  const value = String(text ?? "");
  const map = emotes instanceof Map ? emotes : emoteMap(emotes);
  if (!map.size) return value ? [{ text: value }] : [];
  const pieces = [];
  let last = 0;
  CODE_IN_TEXT.lastIndex = 0;
  for (let match = CODE_IN_TEXT.exec(value); match; match = CODE_IN_TEXT.exec(value)) {
    const code = `:${match[1]}:`;
    const url = map.get(code);
    if (!url) continue;
    if (match.index > last) pieces.push({ text: value.slice(last, match.index) });
    pieces.push({ code, url });
    // The search goes on from the closing colon (the regex left lastIndex there): it
    // may open the next code, drawn right after this one.
    last = match.index + code.length;
  }
  if (last < value.length) pieces.push({ text: value.slice(last) });
  return pieces;
}

/** An emote as an image; if the image is gone (emote removed), its code as text. */
export function emoteImage(code, url) {
  const img = document.createElement("img");
  img.className = "emote";
  img.src = url;
  img.alt = code;
  img.title = code;
  img.decoding = "async";
  img.draggable = false;
  img.addEventListener("error", () => img.replaceWith(document.createTextNode(code)), { once: true });
  return img;
}

/** Text nodes and emote images for `text` (a stretch of a body with no links or mentions). */
export function emoteNodes(text, emotes) {
  return splitEmotes(text, emotes).map((piece) => (piece.code ? emoteImage(piece.code, piece.url) : piece.text));
}

/** The room's emotes for the picker, from the emotes API; [] when it cannot be read. */
export async function fetchRoomEmotes(url) {
  if (!url) return [];
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return [];
    const data = await response.json();
    return [...emoteMap(data.emotes)].map(([code, src]) => ({ code, url: src }));
  } catch {
    return [];
  }
}

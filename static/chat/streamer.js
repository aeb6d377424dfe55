/**
 * The host's links for going on stream, in the Tools panel: the overlay's address for
 * a browser source in streaming software (mode and tips chosen here, copied with one
 * click) and the popout chat for a second screen.
 */
import { canRunRoom } from "./roles.js";
import { gettext } from "./i18n.js";

/** The overlay's URL with the chosen options; list mode and every line are the defaults. */
export function overlayUrl(base, { mode = "list", tipsOnly = false } = {}) {
  const url = new URL(base, window.location.href);
  url.search = "";
  if (mode !== "list") url.searchParams.set("mode", mode);
  if (tipsOnly) url.searchParams.set("tips", "only");
  return url.toString();
}

export class StreamerLinks {
  /** app: {toast(text, level)}; els: {tool, url, copy, open, mode, tipsOnly} */
  constructor(app, els) {
    this.app = app;
    this.els = els;
    this.base = els.url.value;
    els.mode.addEventListener("change", () => this.#update());
    els.tipsOnly.addEventListener("change", () => this.#update());
    els.copy.addEventListener("click", () => this.#copy());
    // Selecting it all at once is what a person copying an address wants.
    els.url.addEventListener("focus", () => els.url.select());
  }

  setMe(me) {
    this.els.tool.hidden = !canRunRoom(me);
  }

  #update() {
    const mode = this.els.mode.querySelector("input:checked")?.value || "list";
    const url = overlayUrl(this.base, { mode, tipsOnly: this.els.tipsOnly.checked });
    this.els.url.value = url;
    this.els.open.href = url;
  }

  async #copy() {
    const text = this.els.url.value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard API on plain http away from localhost: the browser's own copy.
      this.els.url.focus();
      this.els.url.select();
      if (!document.execCommand?.("copy")) {
        this.app.toast(gettext("Couldn't copy. The address is selected: copy it with Ctrl+C."), "info");
        return;
      }
    }
    this.app.toast(gettext("Overlay address copied."), "ok");
  }
}

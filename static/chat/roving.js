/**
 * Keyboard use of the message list with one tab stop (roving focus): Tab lands on the
 * list, Up/Down move between lines, Home/End go to the oldest/newest, Left/Right move
 * between the buttons and links of the current line, Esc goes back to the line. The
 * next Tab leaves the list for the composer instead of stopping on every button of
 * every line (their tabindex is -1).
 */
const CONTROLS = "button:not([disabled]), a[href], [role=button]";

export class RovingFocus {
  constructor(list) {
    this.list = list;
    this.current = null;
    list.addEventListener("focus", (event) => {
      if (event.target === list) this.enter();
    });
    list.addEventListener("focusin", (event) => {
      if (event.target === list) return;
      // While focus is inside, the list itself is no tab stop: Shift+Tab leaves it.
      list.tabIndex = -1;
      this.current = event.target.closest("li") || this.current;
    });
    list.addEventListener("focusout", (event) => {
      if (!list.contains(event.relatedTarget)) list.tabIndex = 0;
    });
    list.addEventListener("keydown", (event) => this.#key(event));
  }

  /** The lines the current view shows (filters hide some). */
  lines() {
    return [...this.list.children].filter((line) => line.getClientRects().length > 0);
  }

  enter() {
    const lines = this.lines();
    const line = this.current?.isConnected && lines.includes(this.current) ? this.current : lines.at(-1);
    if (line) this.focusLine(line);
  }

  focusLine(line) {
    line.tabIndex = -1;
    line.focus({ preventScroll: true });
    line.scrollIntoView({ block: "nearest" });
  }

  #key(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const line = event.target.closest?.("li");
    if (!line || !this.list.contains(line) || line.parentElement !== this.list) return;
    const lines = this.lines();
    const at = lines.indexOf(line);
    const go = (target) => {
      event.preventDefault();
      if (target) this.focusLine(target);
    };
    switch (event.key) {
      case "ArrowUp":
        go(lines[Math.max(0, at - 1)]);
        return;
      case "ArrowDown":
        go(lines[Math.min(lines.length - 1, at + 1)]);
        return;
      case "Home":
        go(lines[0]);
        return;
      case "End":
        go(lines.at(-1));
        return;
      case "Escape":
        if (event.target !== line) go(line);
        return;
      case "ArrowRight":
      case "ArrowLeft": {
        const controls = [...line.querySelectorAll(CONTROLS)].filter((c) => c.getClientRects().length > 0);
        if (!controls.length) return;
        event.preventDefault();
        const i = controls.indexOf(event.target);
        const step = event.key === "ArrowRight" ? 1 : -1;
        const next = i < 0 ? (step > 0 ? 0 : controls.length - 1) : i + step;
        if (next < 0 || next >= controls.length) this.focusLine(line);
        else controls[next].focus();
        return;
      }
      default:
        return;
    }
  }
}

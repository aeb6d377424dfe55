/**
 * Tipping the host: the small tip form by the composer, and the top-tippers panel.
 */
import { newClientId } from "./connection.js";
import { format, gettext, ngettext } from "./i18n.js";
import { limits } from "./limits.js";
import { formatCoins as coins, formatNumber, h, icon } from "./render.js";

export const QUICK_AMOUNTS = [10, 50, 100, 500, 1000];
const LEADERBOARD_DEBOUNCE_MS = 1500;

const balanceText = (n) => format(gettext("Balance: %(coins)s"), { coins: coins(n) });

export class TipForm {
  /** app: {commands, popover, toast, balance(), setBalance(n)} */
  constructor(app, button) {
    this.app = app;
    this.button = button;
    this.amount = 100;
    this.note = "";
    // Kept until the server answers for this tip, so a resend after a lost answer
    // charges once (the client_id makes the tip idempotent).
    this.clientId = newClientId();
    this.sending = false;
    button.addEventListener("click", () => {
      this.app.popover.toggle(button, this.#form(), { placement: "above", label: gettext("Tip the host") });
    });
  }

  /** The server restated the balance (coins granted elsewhere): show it if the form is open. */
  balanceChanged() {
    const shown = document.getElementById("tip-balance");
    if (shown) shown.textContent = balanceText(this.app.balance());
  }

  #form() {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const amount = h("input", {
      type: "number", id: "tip-amount", class: "input input-amount", min: "1", max: String(limits.tip_max), step: "1",
      inputmode: "numeric", value: String(this.amount), "aria-describedby": "tip-balance",
    });
    const noteMax = limits.tip_body_max;
    const noteCount = h("span", { class: "field-count", text: `${[...this.note].length}/${noteMax}` });
    const note = h("input", {
      type: "text", id: "tip-note", class: "input", maxlength: String(noteMax), placeholder: gettext("Say something (optional)"), value: this.note,
    });
    const submit = h("button", { type: "submit", class: "button", id: "tip-send" });
    const picks = QUICK_AMOUNTS.map((n) =>
      h("button", { type: "button", class: "chip-button", dataset: { amount: String(n) }, "aria-pressed": "false", text: formatNumber(n) }),
    );
    const sync = () => {
      const value = Number.parseInt(amount.value, 10);
      this.amount = Number.isFinite(value) ? value : amount.value;
      submit.textContent = Number.isFinite(value) && value > 0 ? format(gettext("Send %(coins)s"), { coins: coins(value) }) : gettext("Send tip");
      for (const pick of picks) pick.setAttribute("aria-pressed", String(Number(pick.dataset.amount) === value));
    };
    for (const pick of picks) {
      pick.addEventListener("click", () => {
        amount.value = pick.dataset.amount;
        sync();
        amount.focus();
      });
    }
    amount.addEventListener("input", sync);
    note.addEventListener("input", () => {
      this.note = note.value;
      noteCount.textContent = `${[...note.value].length}/${noteMax}`;
    });
    const form = h(
      "form",
      { class: "tip-form", id: "tip-form", novalidate: true },
      h("div", { class: "popover-head" },
        h("span", { class: "popover-title" }, icon("coin"), gettext("Tip the host")),
        h("span", { class: "tip-balance", id: "tip-balance", role: "status", text: balanceText(this.app.balance()) }),
      ),
      h("div", { class: "chip-row", role: "group", "aria-label": gettext("Quick amounts") }, ...picks),
      h("label", { class: "field-row" }, h("span", { class: "field-label", text: gettext("Amount") }), amount, h("span", { class: "muted", text: gettext("coins") })),
      h("label", { class: "field-row" }, h("span", { class: "visually-hidden", text: gettext("Note") }), note),
      h("div", { class: "field-foot" }, noteCount),
      error,
      submit,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#send({ amount, note, submit, error, balance: form.querySelector(".tip-balance") });
    });
    sync();
    amount.setAttribute("autofocus", "");
    return form;
  }

  async #send({ amount, note, submit, error, balance }) {
    if (this.sending) return;
    const raw = amount.value.trim();
    if (raw === "") {
      showError(error, gettext("Enter how many coins to tip."));
      return;
    }
    // Whatever number is typed goes to the server, which judges it (invalid_amount).
    const value = Number(raw);
    this.sending = true;
    submit.disabled = true;
    error.hidden = true;
    try {
      const ack = await this.app.commands.run(
        { type: "tip", amount: Number.isInteger(value) ? value : raw, body: note.value.trim() },
        { clientId: this.clientId },
      );
      this.clientId = newClientId();
      this.note = "";
      if (Number.isInteger(ack.balance)) this.app.setBalance(ack.balance);
      this.app.popover.close();
      this.app.toast(format(gettext("You tipped %(coins)s. Thank you!"), { coins: coins(value) }), "info");
    } catch (failure) {
      // Only a stored tip is replayed; after an error the same id is a fresh attempt.
      if (failure.code === "insufficient_funds") {
        showError(error, format(gettext("%(detail)s Pick a smaller amount."), { detail: failure.detail }));
      } else {
        showError(error, failure.detail);
      }
      if (balance) balance.textContent = balanceText(this.app.balance());
    } finally {
      this.sending = false;
      submit.disabled = false;
    }
  }
}

function showError(node, text) {
  node.textContent = text;
  node.hidden = false;
}

export class Leaderboard {
  /** els: {panel, list, empty, tabs}; url: the leaderboard API. */
  constructor({ url, list, empty, tabs, isVisible }) {
    this.url = url;
    this.list = list;
    this.empty = empty;
    this.tabs = tabs;
    this.isVisible = isVisible;
    this.board = "stream";
    this.data = null;
    this.stale = true;
    this.timer = null;
    for (const tab of tabs) {
      tab.addEventListener("click", () => {
        this.board = tab.dataset.board;
        for (const other of tabs) other.setAttribute("aria-selected", String(other === tab));
        this.render();
      });
    }
  }

  /** The panel came into view. */
  shown() {
    if (this.stale) this.refresh();
  }

  /** A tip happened: the totals moved. Many tips in a burst cost one request. */
  tipped() {
    this.stale = true;
    if (!this.isVisible()) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), LEADERBOARD_DEBOUNCE_MS);
  }

  async refresh() {
    if (!this.url) return;
    this.stale = false;
    try {
      const response = await fetch(this.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      this.data = await response.json();
    } catch {
      this.stale = true;
      this.empty.textContent = gettext("Couldn't load the top tippers.");
      this.empty.hidden = false;
      return;
    }
    this.render();
  }

  render() {
    const rows = this.data?.[this.board === "stream" ? "stream" : "all_time"] || [];
    this.list.replaceChildren(
      ...rows.map((row, i) =>
        h("li", { class: "leader", dataset: { userId: String(row.id) } },
          h("span", { class: "leader-rank", text: String(i + 1) }),
          h("span", { class: "leader-name", text: row.name }),
          h("span", { class: "leader-total", title: format(ngettext("%(n)s tip", "%(n)s tips", row.tips), { n: row.tips }), text: formatNumber(row.total) }),
        ),
      ),
    );
    this.empty.hidden = rows.length > 0;
    if (!rows.length && this.data) {
      this.empty.textContent = this.board === "stream" ? gettext("No tips this stream yet.") : gettext("No tips yet.");
    }
  }
}

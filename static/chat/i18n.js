/**
 * Translations for the page's own words, from Django's JavaScript catalog
 * (/jsi18n/, loaded before the modules). Without it (a module tested alone) the
 * English source text is used.
 *
 * Only string literals go into gettext/ngettext: `manage.py makemessages -d djangojs`
 * finds them there. Values go in afterwards with format().
 */
const catalog = globalThis.django;

export function gettext(text) {
  return catalog?.gettext ? catalog.gettext(text) : text;
}

export function ngettext(singular, plural, count) {
  if (catalog?.ngettext) return catalog.ngettext(singular, plural, count);
  return count === 1 ? singular : plural;
}

/** Fill `%(name)s` slots from `values`; unknown slots stay as they are. */
export function format(text, values) {
  return text.replace(/%\((\w+)\)s/g, (slot, name) => (name in values ? String(values[name]) : slot));
}

/** The page's language as a BCP 47 tag for Intl ("zh-hans" -> "zh-Hans"). */
export function pageLocale(doc = globalThis.document) {
  const lang = doc?.documentElement?.lang || "en";
  const [base, ...rest] = lang.split("-");
  return [base, ...rest.map((part) => (part.length === 4 ? part[0].toUpperCase() + part.slice(1).toLowerCase() : part.toUpperCase()))].join("-");
}

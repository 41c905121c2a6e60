"""Building blocks for self-contained HTML reports: one file, no network, no external anything.

Everything is built with Python string templates; every piece of user text goes through
:func:`esc`. CSS and JavaScript are inline; figures are inline SVG; no fonts are loaded
(the system font stack is used). The blocks are generic so that several reports share them:

* :class:`ColorScale`: a perceptually uniform colour scale (magma, light = low) as CSS
  classes, with a legend;
* :class:`Page` and :meth:`Page.token_text`: coloured token text with one tooltip per token
  (what the tooltip shows is declared once by a :class:`TipSchema`);
* :func:`summary_table`, :func:`sortable_table`, :func:`figure`, :func:`section`.

The page's script supports ``#focus=t<N>`` in the URL: it opens token ``N``'s tooltip on
load (used by the browser test and handy for sharing a link to a token). After its set-up
it records ``performance.now()`` in the root element's ``data-render-ms`` attribute, and
after the ``load`` event with layout done, in ``data-load-ms`` (updated again at the first
animation frame; a headless browser that renders no frame keeps the first value).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

__all__ = [
    "MAGMA",
    "ColorScale",
    "Column",
    "Page",
    "SummaryRow",
    "TipField",
    "TipSchema",
    "TokenSpan",
    "esc",
    "figure",
    "format_number",
    "section",
    "sortable_table",
    "summary_table",
]


def esc(text: Any) -> str:
    """HTML-escape ``text`` (quotes too), after ``str()``.

    Parameters
    ----------
    text : any
        What to show.

    Returns
    -------
    str
        Safe to put in element content and in quoted attribute values.

    Examples
    --------
    >>> esc('<script>alert("x")</script>')
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'
    """
    return html.escape(str(text), quote=True)


def _num(x: Any) -> float | None:
    """A float from a number or a strict-JSON non-finite string; None if not numeric."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str) and x in ("inf", "-inf", "nan", "Infinity", "-Infinity", "NaN"):
        return float(x.replace("Infinity", "inf").replace("NaN", "nan"))
    try:
        return float(x)  # numpy scalars
    except (TypeError, ValueError):
        return None


def _is_int(x: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(x, Integral) and not isinstance(x, bool)


def format_number(x: Any, *, integer: bool | None = None) -> str:
    """How reports show a number: integers with thousands separators, floats to 4 digits.

    Parameters
    ----------
    x : number or str
        The value; the strings ``"inf"``/``"nan"`` (strict-JSON spellings) are accepted.
    integer : bool, optional
        Force integer formatting; by default integers (Python or numpy, not floats or
        bools) are shown as integers.

    Returns
    -------
    str

    Examples
    --------
    >>> import numpy as np
    >>> [format_number(v) for v in (12345, np.int64(12345), 3.14159, 1234.567, 0.000123)]
    ['12,345', '12,345', '3.142', '1,234.6', '0.000123']
    >>> format_number(float("inf")), format_number(None)
    ('∞', '—')
    """
    f = _num(x)
    if f is None:
        return esc(x) if x is not None else "—"
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "∞" if f > 0 else "−∞"
    if integer or (integer is None and _is_int(x)):
        return f"{round(f):,}"
    if abs(f) >= 1000:
        return f"{f:,.1f}"
    if f == 0:
        return "0"
    return f"{f:.4g}"


def _data_value(x: Any) -> str:
    """The exact value for a ``data-value`` attribute (``repr`` of the float)."""
    f = _num(x)
    if f is None:
        return esc(x)
    if _is_int(x):
        return str(int(x))
    return repr(f)


# ----------------------------------------------------------------------------- colour
#: magma, 16 anchors from matplotlib's table (index 0 = darkest).
MAGMA: tuple[str, ...] = (
    "#000004", "#0c0926", "#222146", "#3b0f70", "#57157e", "#721f81", "#8c2981", "#a8327d",
    "#c43c75", "#de4968", "#f1605d", "#fa7f5e", "#fe9f6d", "#febf84", "#fddea0", "#fcfdbf",
)  # fmt: skip


def _hex(c: str) -> tuple[float, float, float]:
    return (int(c[1:3], 16) / 255, int(c[3:5], 16) / 255, int(c[5:7], 16) / 255)


def _interp(anchors: Sequence[str], t: float) -> tuple[float, float, float]:
    t = min(max(t, 0.0), 1.0) * (len(anchors) - 1)
    i = min(int(t), len(anchors) - 2)
    f = t - i
    a, b = _hex(anchors[i]), _hex(anchors[i + 1])
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f)


def _luminance(rgb: tuple[float, float, float]) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@dataclass(frozen=True)
class ColorScale:
    """Values ``0 .. vmax`` mapped to ``n`` CSS classes ``c0 .. c{n-1}`` along magma.

    Low values are light (unobtrusive), high values dark; lightness changes monotonically,
    so the order survives greyscale printing and most colour-vision deficiencies. Text
    colour flips to white on dark backgrounds (WCAG contrast). Values at or above ``vmax``
    get the darkest class.

    Parameters
    ----------
    vmax : float
        Top of the scale (in ``unit``).
    n : int
        Number of colour steps.
    unit : str
        Unit shown in the legend.
    lo, hi : float
        The part of magma used, as fractions (``hi`` is the light end, for value 0).

    Examples
    --------
    >>> scale = ColorScale(vmax=8.0, n=4)
    >>> [scale.index(v) for v in (0.0, 3.0, 8.0, float("nan"))]
    [0, 1, 3, 0]
    >>> scale.colors()[0]  # the lightest class: background, text colour
    ('#fcfdbf', '#000000')
    """

    vmax: float
    n: int = 24
    unit: str = "bits"
    lo: float = 0.12
    hi: float = 1.0

    def colors(self) -> list[tuple[str, str]]:
        """Per class, ``(background, text colour)`` as CSS hex colours."""
        out = []
        for k in range(self.n):
            t = self.hi - (self.hi - self.lo) * (k / max(self.n - 1, 1))
            rgb = _interp(MAGMA, t)
            bg = "#{:02x}{:02x}{:02x}".format(*(round(c * 255) for c in rgb))
            L = _luminance(rgb)
            fg = "#000000" if (L + 0.05) / 0.05 >= 1.05 / (L + 0.05) else "#ffffff"
            out.append((bg, fg))
        return out

    def index(self, value: float) -> int:
        """The class index of ``value`` (NaN -> 0, ``>= vmax`` and inf -> ``n - 1``)."""
        if not value > 0:
            return 0
        if value >= self.vmax:
            return self.n - 1
        return min(int(value / self.vmax * self.n), self.n - 1)

    def css(self) -> str:
        """CSS rules ``.c<k>{background;color}`` for every class."""
        return "".join(
            f".c{k}{{background:{bg};color:{fg}}}" for k, (bg, fg) in enumerate(self.colors())
        )

    def legend(self, label: str = "surprisal") -> str:
        """An HTML legend: the swatches with tick labels in ``unit``."""
        step = self.vmax / self.n
        cells = "".join(
            f'<span class="sw c{k}" title="{esc(format_number(k * step))}–'
            f'{esc(format_number((k + 1) * step))} {esc(self.unit)}"></span>'
            for k in range(self.n)
        )
        ticks = "".join(
            f'<span style="left:{100 * q / 4:.0f}%">{esc(format_number(self.vmax * q / 4))}'
            f"{'+' if q == 4 else ''}</span>"
            for q in range(5)
        )
        return (
            f'<div class="legend" aria-label="colour scale"><span class="legend-label">'
            f"{esc(label)} ({esc(self.unit)})</span>"
            f'<span class="legend-bar"><span class="sws">{cells}</span>'
            f'<span class="ticks">{ticks}</span></span></div>'
        )


# ----------------------------------------------------------------------------- tooltips
@dataclass(frozen=True)
class TipField:
    """One number shown in every token tooltip.

    Parameters
    ----------
    key : str
        Machine name (the ``data-k`` of its tooltip row).
    label : str
        What the tooltip calls it.
    unit : str
        Appended after the number (may be empty).
    digits : int or None
        Decimals shown; None shows an integer.
    """

    key: str
    label: str
    unit: str = ""
    digits: int | None = 2


@dataclass(frozen=True)
class TipSchema:
    """What token tooltips show: numeric fields, then lists of alternatives.

    Parameters
    ----------
    fields : sequence of TipField
        The numbers, in order.
    alternatives : sequence of str
        Headings of the alternative lists (e.g. ``("top alternatives",)``, or one per
        model in a comparison).

    Examples
    --------
    >>> TipSchema((TipField("s", "surprisal", "bits", 2),)).to_json()
    {'f': [['s', 'surprisal', 'bits', 2]], 'a': ['top alternatives']}
    """

    fields: tuple[TipField, ...]
    alternatives: tuple[str, ...] = ("top alternatives",)

    def to_json(self) -> dict[str, Any]:
        """The schema as the page's script reads it.

        Returns
        -------
        dict
            ``{"f": [[key, label, unit, digits], ...], "a": [heading, ...]}``.
        """
        return {
            "f": [[f.key, f.label, f.unit, f.digits] for f in self.fields],
            "a": list(self.alternatives),
        }


@dataclass
class TokenSpan:
    """One coloured piece of text with a tooltip.

    Parameters
    ----------
    text : str
        The text shown (escaped on output).
    value : float
        What the colour encodes (e.g. surprisal in bits).
    fields : sequence of float
        Numbers for the tooltip, aligned with the schema's fields.
    alternatives : sequence of sequence of (str, float)
        Per schema heading, ``(token text, probability)`` pairs.
    note : str
        Extra line for the tooltip (e.g. "2 tokens").

    Examples
    --------
    >>> span = TokenSpan(" cat", 7.81, (7.81, 5.02), [[(" dog", 0.21), (" man", 0.07)]])
    >>> span.text, span.value, span.alternatives[0][0]
    (' cat', 7.81, (' dog', 0.21))
    """

    text: str
    value: float
    fields: Sequence[float]
    alternatives: Sequence[Sequence[tuple[str, float]]] = ()
    note: str = ""


def _round_field(v: float, digits: int | None) -> float | int | str | None:
    if v is None:
        return None
    f = float(v)
    if not math.isfinite(f):
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    return round(f) if digits is None else round(f, digits)


def _pct(p: float) -> float | str:
    """Probability as a percentage, 1 decimal (2 significant digits below 0.1 %)."""
    q = float(p) * 100.0
    if not math.isfinite(q):
        return "nan"
    if q >= 0.1 or q == 0:
        return round(q, 1)
    return float(f"{q:.2g}")


def tooltip_texts(span: TokenSpan, schema: TipSchema) -> dict[str, str]:
    """The texts the page's tooltip shows for ``span``, per field key (for tests and docs).

    Parameters
    ----------
    span : TokenSpan
        The token.
    schema : TipSchema
        The fields.

    Returns
    -------
    dict
        ``{key: "3.21 bits", ...}`` exactly as the tooltip renders them.

    Examples
    --------
    >>> schema = TipSchema((TipField("s", "surprisal", "bits", 2), TipField("r", "rank", "", None)))
    >>> tooltip_texts(TokenSpan("a", 3.0, (3.14159, 12)), schema)
    {'s': '3.14 bits', 'r': '12'}
    """
    out = {}
    for f, v in zip(schema.fields, span.fields):
        r = _round_field(v, f.digits)
        if isinstance(r, str):
            s = {"inf": "∞", "-inf": "−∞"}.get(r, r)
        elif f.digits is None:
            s = str(r)
        else:
            s = f"{r:.{f.digits}f}"
        out[f.key] = s + (f" {f.unit}" if f.unit else "")
    return out


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class SummaryRow:
    """One row of a summary table.

    Parameters
    ----------
    key : str
        Machine name (``data-key``), e.g. ``"perplexity"``.
    label : str
        What the table calls it.
    value : any
        The number (or text).
    ci : (float, float), optional
        A confidence interval.
    help : str
        One line on how to read it.
    """

    key: str
    label: str
    value: Any
    ci: tuple[Any, Any] | None = None
    help: str = ""


def summary_table(rows: Sequence[SummaryRow], *, ci_label: str = "95% CI") -> str:
    """A two- or three-column table of headline numbers.

    Each value cell carries ``data-value`` with the exact number (``repr``), the text shows
    :func:`format_number`.

    Parameters
    ----------
    rows : sequence of SummaryRow
        The rows.
    ci_label : str
        Header of the confidence-interval column (shown only if a row has one).

    Returns
    -------
    str
        A ``<table class="summary">``.

    Examples
    --------
    >>> html = summary_table([SummaryRow("ppl", "perplexity", 12.5, (11.0, 14.0))])
    >>> 'data-value="12.5"' in html, 'data-lo="11.0"' in html, ">95% CI<" in html
    (True, True, True)
    """
    has_ci = any(r.ci is not None for r in rows)
    head = (
        "<thead><tr><th scope=col>measure</th><th scope=col>value</th>"
        + (f"<th scope=col>{esc(ci_label)}</th>" if has_ci else "")
        + "<th scope=col>how to read it</th></tr></thead>"
    )
    body = []
    for r in rows:
        ci = ""
        if has_ci:
            if r.ci is None:
                ci = "<td></td>"
            else:
                lo, hi = r.ci
                ci = (
                    f'<td class="num ci" data-lo="{_data_value(lo)}" data-hi="{_data_value(hi)}">'
                    f"{format_number(lo)} – {format_number(hi)}</td>"
                )
        body.append(
            f'<tr data-key="{esc(r.key)}"><th scope=row>{esc(r.label)}</th>'
            f'<td class="num" data-value="{_data_value(r.value)}">{format_number(r.value)}</td>'
            f'{ci}<td class="help">{esc(r.help)}</td></tr>'
        )
    return f'<table class="summary">{head}<tbody>{"".join(body)}</tbody></table>'


@dataclass(frozen=True)
class Column:
    """A column of a :func:`sortable_table`.

    Parameters
    ----------
    key : str
        Key of the row dicts.
    label : str
        Header text.
    numeric : bool
        Sort numerically and right-align.
    integer : bool
        Show as an integer.
    html : bool
        The row value is already-safe HTML (it is not escaped); sort by ``key + "_sort"``
        if present, else by the text.
    """

    key: str
    label: str
    numeric: bool = True
    integer: bool = False
    html: bool = False


def sortable_table(
    table_id: str,
    columns: Sequence[Column],
    rows: Iterable[dict[str, Any]],
    *,
    caption: str = "",
) -> str:
    """A table whose columns sort on click (or Enter/Space on the header button).

    Parameters
    ----------
    table_id : str
        The element id.
    columns : sequence of Column
        The columns.
    rows : iterable of dict
        One dict per row; missing keys show as "—".
    caption : str
        Caption text.

    Returns
    -------
    str
        A ``<table class="sortable">``.

    Examples
    --------
    >>> cols = [Column("name", "name", numeric=False), Column("n", "count", integer=True)]
    >>> html = sortable_table("t", cols, [{"name": "a<b", "n": 1234}])
    >>> "a&lt;b" in html, ">1,234<" in html, 'data-sort="1234.0"' in html
    (True, True, True)
    """
    head = "".join(
        f'<th scope=col data-key="{esc(c.key)}" data-numeric="{int(c.numeric)}"'
        f' aria-sort="none"><button type="button">{esc(c.label)}</button></th>'
        for c in columns
    )
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c.key)
            if c.html:
                sort_v = row.get(c.key + "_sort", "")
                cells.append(f'<td data-sort="{esc(sort_v)}">{v if v is not None else ""}</td>')
            elif c.numeric:
                f = _num(v)
                sort_attr = "" if f is None or math.isnan(f) else repr(f)
                cells.append(
                    f'<td class="num" data-key="{esc(c.key)}" data-sort="{esc(sort_attr)}"'
                    f' data-value="{_data_value(v) if v is not None else ""}">'
                    f"{format_number(v, integer=c.integer or None)}</td>"
                )
            else:
                cells.append(f'<td data-sort="{esc(v)}">{esc(v) if v is not None else "—"}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="tablewrap"><table class="sortable" id="{esc(table_id)}">{cap}'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def figure(fig_id: str, svg: str, caption: str) -> str:
    """An inline-SVG figure with a caption.

    Parameters
    ----------
    fig_id : str
        The element id.
    svg : str
        An ``<svg>`` element (from :func:`infolens.report.plots.to_svg`); inserted as is.
    caption : str
        Caption text (escaped).

    Returns
    -------
    str
        A ``<figure>``.

    Examples
    --------
    >>> figure("f1", "<svg></svg>", "A & B")
    '<figure id="f1" class="fig"><div class="svg"><svg></svg></div><figcaption>A &amp; B</figcaption></figure>'
    """
    return (
        f'<figure id="{esc(fig_id)}" class="fig"><div class="svg">{svg}</div>'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def section(title: str, body: str, *, section_id: str = "", intro: str = "") -> str:
    """A titled ``<section>``; ``body`` is HTML, ``title`` and ``intro`` are text.

    Parameters
    ----------
    title : str
        The ``<h2>`` heading (escaped).
    body : str
        The content, already-safe HTML.
    section_id : str
        The element id, if any.
    intro : str
        A paragraph under the heading (escaped), if any.

    Returns
    -------
    str
        A ``<section>``.

    Examples
    --------
    >>> section("Summary", "<p>x</p>", section_id="s", intro="Read <me>")
    '<section id="s"><h2>Summary</h2><p class="intro">Read &lt;me&gt;</p><p>x</p></section>'
    """
    sid = f' id="{esc(section_id)}"' if section_id else ""
    p = f'<p class="intro">{esc(intro)}</p>' if intro else ""
    return f"<section{sid}><h2>{esc(title)}</h2>{p}{body}</section>"


# ----------------------------------------------------------------------------- page
_CSS = """
:root{--fg:#1b1b1f;--muted:#5a5a66;--line:#d9d9e0;--bg:#fff;--accent:#51127c}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg);margin:0}
main{max-width:1120px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:1.5em;margin:.4em 0 .1em}h2{font-size:1.2em;margin:1.6em 0 .5em;
border-bottom:1px solid var(--line);padding-bottom:.2em}h3{font-size:1em;margin:1.2em 0 .3em}
.meta,.intro,figcaption,.note{color:var(--muted);font-size:.9em}
.note{border-left:3px solid var(--accent);padding:.3em .7em;background:#f6f3fa;color:var(--fg)}
table{border-collapse:collapse;font-size:.92em}
th,td{padding:.25em .6em;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.summary td.help{color:var(--muted)}
.tablewrap{max-height:520px;overflow:auto;border:1px solid var(--line)}
table.sortable{width:100%}table.sortable thead th{position:sticky;top:0;background:#f4f4f7}
table.sortable th button{font:inherit;font-weight:600;background:none;border:0;padding:0;
cursor:pointer;color:inherit}
th[aria-sort=ascending] button::after{content:" ▲"}th[aria-sort=descending] button::after{content:" ▼"}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:12px}
figure{margin:0}.svg svg{max-width:100%}
.legend{display:flex;align-items:center;gap:10px;margin:.6em 0 1.2em;font-size:.85em}
.legend-bar{position:relative;display:inline-block;width:320px;padding-bottom:1.2em}
.sws{display:flex;height:14px;border:1px solid #888}.sw{flex:1}
.ticks span{position:absolute;top:16px;transform:translateX(-50%);color:var(--muted)}
.doc{margin:1em 0 1.6em}.doc h3 a{color:inherit}
.tokens{white-space:pre-wrap;word-wrap:break-word;font:14px/1.75 ui-monospace,SFMono-Regular,
Menlo,Consolas,"DejaVu Sans Mono",monospace;border:1px solid var(--line);padding:10px 12px;
border-radius:4px;max-height:640px;overflow:auto}
.tokens:focus{outline:2px solid var(--accent)}
.blk{content-visibility:auto;contain-intrinsic-size:auto 600px}
.t{cursor:default;border-radius:2px}.t:hover,.t.sel{outline:2px solid #2c728e;outline-offset:0}
#tip{position:absolute;z-index:10;background:#fff;border:1px solid #888;border-radius:6px;
box-shadow:0 4px 16px rgba(0,0,0,.18);padding:8px 10px;font-size:13px;min-width:210px;
max-width:340px;white-space:normal}
#tip .tip-tok{font:600 14px ui-monospace,Menlo,Consolas,monospace;margin-bottom:4px;
word-break:break-all}
#tip table{width:100%}#tip th,#tip td{padding:1px 4px;border:0}#tip td{text-align:right}
#tip .alt-h{margin-top:6px;color:var(--muted);font-size:12px}
#tip td.alt-tok{text-align:left;font-family:ui-monospace,Menlo,Consolas,monospace}
#tip .tip-note{color:var(--muted);font-size:12px}
mark.span{background:#fbd2b4;padding:0 1px}
.ctx{color:var(--muted)}
"""

_JS = r"""
(function(){
"use strict";
var root=document.documentElement;
var dataEl=document.getElementById("tokdata");
var D=null;
function data(){if(!D)D=dataEl?JSON.parse(dataEl.textContent):{schema:{f:[],a:[]},strings:[],tokens:[]};return D;}
var tip=document.getElementById("tip");
var cur=-1;
function vis(s){return s.replace(/ /g,"\u2423").replace(/\n/g,"\u21b5").replace(/\t/g,"\u2192");}
function fmt(v,d){
  if(v==="inf")return "\u221e"; if(v==="-inf")return "\u2212\u221e"; if(v==="nan"||v===null)return "nan";
  return d===null?String(v):Number(v).toFixed(d);
}
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;
  if(text!==undefined)e.textContent=text;return e;}
function show(i,pin){
  var span=document.getElementById("t"+i), t=data().tokens[i];
  if(!span||!t||!tip)return;
  if(cur>=0){var old=document.getElementById("t"+cur);if(old)old.classList.remove("sel");}
  cur=i; span.classList.add("sel");
  tip.textContent="";
  tip.appendChild(el("div","tip-tok",vis(span.textContent)));
  var tb=el("table"),f=D.schema.f;
  for(var k=0;k<f.length;k++){var tr=el("tr");tr.setAttribute("data-k",f[k][0]);
    tr.appendChild(el("th",null,f[k][1]));
    tr.appendChild(el("td",null,fmt(t[0][k],f[k][3])+(f[k][2]?" "+f[k][2]:"")));tb.appendChild(tr);}
  tip.appendChild(tb);
  var alts=t[1]||[];
  for(var a=0;a<alts.length;a++){
    if(!alts[a]||!alts[a].length)continue;
    tip.appendChild(el("div","alt-h",D.schema.a[a]||"alternatives"));
    var at=el("table","alts");at.setAttribute("data-list",String(a));
    for(var j=0;j+1<alts[a].length;j+=2){var r=el("tr");
      r.appendChild(el("td","alt-tok",vis(D.strings[alts[a][j]])));
      r.appendChild(el("td",null,String(alts[a][j+1])+"%"));at.appendChild(r);}
    tip.appendChild(at);}
  if(t[2])tip.appendChild(el("div","tip-note",t[2]));
  tip.setAttribute("data-token","t"+i); tip.hidden=false;
  var r=span.getBoundingClientRect();
  var x=window.scrollX+r.left, y=window.scrollY+r.bottom+6;
  var w=tip.offsetWidth, maxx=window.scrollX+document.documentElement.clientWidth-w-8;
  tip.style.left=Math.max(8,Math.min(x,maxx))+"px"; tip.style.top=y+"px";
  tip.pinned=!!pin;
}
function hide(){if(!tip)return;tip.hidden=true;tip.pinned=false;
  if(cur>=0){var o=document.getElementById("t"+cur);if(o)o.classList.remove("sel");}cur=-1;}
function idx(e){var s=e.target.closest?e.target.closest(".t"):null;return s?+s.id.slice(1):-1;}
document.addEventListener("mouseover",function(e){var i=idx(e);if(i>=0&&!(tip&&tip.pinned))show(i,false);});
document.addEventListener("click",function(e){var i=idx(e);
  if(i>=0){show(i,true);}else if(tip&&!tip.contains(e.target)){hide();}});
document.addEventListener("keydown",function(e){
  if(e.key==="Escape"){hide();return;}
  var box=e.target.closest?e.target.closest(".tokens"):null; if(!box)return;
  if(e.key!=="ArrowRight"&&e.key!=="ArrowLeft")return;
  var spans=box.querySelectorAll(".t"); if(!spans.length)return;
  var first=+spans[0].id.slice(1), last=+spans[spans.length-1].id.slice(1);
  var n=cur<first||cur>last?first:(e.key==="ArrowRight"?Math.min(cur+1,last):Math.max(cur-1,first));
  show(n,true); document.getElementById("t"+n).scrollIntoView({block:"nearest"}); e.preventDefault();});
document.addEventListener("focusin",function(e){
  var box=e.target.classList&&e.target.classList.contains("tokens")?e.target:null;
  if(box&&cur<0){var s=box.querySelector(".t");if(s)show(+s.id.slice(1),true);}});
function sortBy(th){
  var table=th.closest("table"), tbody=table.tBodies[0], ths=th.parentNode.children;
  var col=Array.prototype.indexOf.call(ths,th), num=th.getAttribute("data-numeric")==="1";
  var dir=th.getAttribute("aria-sort")==="descending"?"ascending":"descending";
  for(var k=0;k<ths.length;k++)ths[k].setAttribute("aria-sort","none");
  th.setAttribute("aria-sort",dir);
  var rows=Array.prototype.slice.call(tbody.rows), sgn=dir==="ascending"?1:-1;
  rows.sort(function(a,b){
    var x=a.cells[col].getAttribute("data-sort"), y=b.cells[col].getAttribute("data-sort");
    if(num){var fx=x===""?NaN:+x, fy=y===""?NaN:+y;
      if(isNaN(fx))return isNaN(fy)?0:1; if(isNaN(fy))return -1; return sgn*(fx-fy);}
    return sgn*x.localeCompare(y);});
  for(var r=0;r<rows.length;r++)tbody.appendChild(rows[r]);
}
document.addEventListener("click",function(e){
  var b=e.target.closest?e.target.closest("table.sortable th button"):null;
  if(b)sortBy(b.parentNode);});
function fromHash(){
  var m=/focus=t(\d+)/.exec(location.hash||"");
  if(m){var i=+m[1], s=document.getElementById("t"+i);
    if(s){s.scrollIntoView({block:"nearest"});show(i,true);}}}
window.addEventListener("hashchange",fromHash);
fromHash();
root.setAttribute("data-render-ms",performance.now().toFixed(1));
function loaded(){document.body.offsetHeight; root.setAttribute("data-load-ms",performance.now().toFixed(1));}
window.addEventListener("load",function(){loaded(); requestAnimationFrame(loaded);});
})();
"""


def _script_json(obj: Any) -> str:
    """JSON safe to embed in a ``<script>`` element (no ``<`` can close it)."""
    return (
        json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        .replace("<", "\\u003c")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


#: Token spans per render block: blocks (split at line ends) off screen are not laid out
#: (``content-visibility: auto``), which keeps large documents quick to open.
_BLOCK_SPANS = 400


@dataclass
class Page:
    """A self-contained report page: sections in order, token tooltips, inline CSS/JS.

    Parameters
    ----------
    title : str
        The page title (text).
    scale : ColorScale
        The colour scale of token text.
    schema : TipSchema
        What token tooltips show.

    Examples
    --------
    >>> page = Page("Demo", ColorScale(vmax=8.0), TipSchema((TipField("s", "surprisal", "bits"),)))
    >>> page.add(section("Text", page.token_text(["Hello", TokenSpan(" world", 5.0, (5.0,))])))
    >>> html = page.render()
    >>> '<span id="t0" class="t c15"> world</span>' in html, html.count("<section")
    (True, 1)
    """

    title: str
    scale: ColorScale
    schema: TipSchema
    parts: list[str] = field(default_factory=list)
    _tokens: list[Any] = field(default_factory=list)
    _strings: dict[str, int] = field(default_factory=dict)

    def add(self, html_part: str) -> None:
        """Append already-built HTML (a section, a paragraph...).

        Parameters
        ----------
        html_part : str
            Safe HTML, placed after the parts added before.

        Examples
        --------
        >>> page = Page("Demo", ColorScale(vmax=1.0), TipSchema(()))
        >>> page.add("<p>hi</p>")
        >>> page.parts
        ['<p>hi</p>']
        """
        self.parts.append(html_part)

    def token_text(self, segments: Iterable[str | TokenSpan], *, label: str = "") -> str:
        """Coloured token text: plain strings as they are, spans coloured with tooltips.

        Span ``k`` of the page gets ``id="t<k>"``; its tooltip data is kept on the page.

        Parameters
        ----------
        segments : iterable of str or TokenSpan
            The text in order.
        label : str
            Accessible name of the text box.

        Returns
        -------
        str
            A focusable ``<div class="tokens">`` (arrow keys step through tokens).
        """
        out: list[str] = []
        in_block = 0  # token spans in the current render block
        digits = [f.digits for f in self.schema.fields]
        strings = self._strings
        index = self.scale.index
        tokens = self._tokens
        out.append('<div class="blk">')
        for seg in segments:
            if isinstance(seg, str):
                out.append(esc(seg))
                if in_block >= _BLOCK_SPANS and seg.endswith("\n"):
                    out.append('</div><div class="blk">')
                    in_block = 0
                continue
            i = len(tokens)
            vals = [_round_field(v, d) for d, v in zip(digits, seg.fields)]
            alts = []
            for lst in seg.alternatives:
                flat: list[Any] = []
                for t, p in lst:
                    k = strings.get(t)
                    if k is None:
                        k = strings[t] = len(strings)
                    flat.append(k)
                    flat.append(_pct(p))
                alts.append(flat)
            entry: list[Any] = [vals, alts]
            if seg.note:
                entry.append(seg.note)
            tokens.append(entry)
            out.append(f'<span id="t{i}" class="t c{index(seg.value)}">{esc(seg.text)}</span>')
            in_block += 1
            if in_block >= _BLOCK_SPANS and seg.text.endswith("\n"):
                out.append('</div><div class="blk">')
                in_block = 0
        out.append("</div>")
        aria = f' aria-label="{esc(label)}"' if label else ""
        return f'<div class="tokens" tabindex="0"{aria}>{"".join(out)}</div>'

    def render(self, *, header: str = "") -> str:
        """The complete HTML document.

        Parameters
        ----------
        header : str
            HTML placed under the ``<h1>`` title.

        Returns
        -------
        str
        """
        data = _script_json(
            {
                "schema": self.schema.to_json(),
                "strings": list(self._strings),
                "tokens": self._tokens,
            }
        )
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="generator" content="infolens">'
            f"<title>{esc(self.title)}</title>"
            f"<style>{_CSS}{self.scale.css()}</style></head><body><main>"
            f"<h1>{esc(self.title)}</h1>{header}"
            + "".join(self.parts)
            + '</main><div id="tip" role="tooltip" hidden></div>'
            f'<script type="application/json" id="tokdata">{data}</script>'
            f"<script>{_JS}</script></body></html>\n"
        )

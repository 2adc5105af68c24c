"""One helper per panel kind, and the frame every slawatch dashboard shares.

Every panel and every query reads the dashboard's ``datasource`` variable; each
helper sets the unit, thresholds and options its kind needs, nothing more. The SDK
cannot load back a panel without options (``"options": null`` makes its
``from_json`` fail), so every helper sets some.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import prometheus as pm

from deploy.monitoring.dashboards.validate import encode

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Every slawatch dashboard carries it; their links menu lists the dashboards by it.
TAG = "slawatch"
GREEN, ORANGE, RED, BLUE, GREY = "green", "orange", "red", "blue", "text"

Item = cogbuilder.Builder[dm.Panel] | dash.Row


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel, with its legend ("{{label}}" templates)."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Column:
    """A value column of a table: a query, the column's name and unit. A column not
    ``shown`` only brings its labels (a config version) into the rows."""

    expr: str
    name: str
    unit: str
    shown: bool = True


@dataclass(frozen=True)
class State:
    """One state of a state timeline: its number in the query, its text, its colour."""

    value: int
    text: str
    color: str


@dataclass(frozen=True)
class Look:
    """How a panel shows its values; what is left out is Grafana's default."""

    unit: str = "short"
    # (from this value on, this colour), above ``base_color``.
    thresholds: tuple[tuple[float, str], ...] = ()
    base_color: str = GREEN
    min: float | None = None
    max: float | None = None
    decimals: int | None = None
    no_value: str | None = None


class _Panel(Protocol):
    """What the SDK's panel builders share (each panel kind is a class of its own)."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: dm.DataSourceRef) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[Any]) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...
    def thresholds(self, thresholds: cogbuilder.Builder[dm.ThresholdsConfig]) -> Self: ...
    def min(self, min_val: float) -> Self: ...
    def max(self, max_val: float) -> Self: ...
    def decimals(self, decimals: float) -> Self: ...
    def no_value(self, no_value: str) -> Self: ...


P = TypeVar("P", bound=_Panel)


def variable(name: str, label: str, query: str, *, all_value: str | None) -> dash.QueryVariable:
    """A multi-value variable from a label_values() query, "All" selected at first.
    ``all_value`` ".*" keeps a long list out of the queries; None makes "All" the
    list itself, so that the variables before this one still filter through it."""
    built = (
        dash.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )
    return built.all_value(all_value) if all_value is not None else built


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[dash.QueryVariable],
    items: Sequence[Item],
    *,
    since: str = "now-6h",
) -> dict[str, Any]:
    """A whole dashboard as JSON: the datasource variable first, then ``variables``;
    ``items`` are rows and the panels under each, laid out left to right."""
    board = (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time(since, "now")
        .timezone("browser")
        .refresh("1m")
        .link(
            dash.DashboardLink("slawatch")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
        .with_variable(
            dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
    )
    for var in variables:
        board = board.with_variable(var)
    for item in items:
        board = board.with_row(item) if isinstance(item, dash.Row) else board.with_panel(item)
    model = board.build()
    # Panel ids: unique in the dashboard, and the same from one build to the next.
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i
    data: dict[str, Any] = encode(model)
    return data


def row(title: str, *, repeat: str | None = None) -> dash.Row:
    """A row header: the panels added after it, up to the next row, are its own.
    (An expanded row holds none itself: Grafana would not show them.)"""
    header = dash.Row(title)
    return header.repeat(repeat) if repeat else header


def thresholds(base: str, steps: Sequence[tuple[float, str]]) -> dash.ThresholdsConfig:
    """Absolute steps: ``base`` below the first value, then each colour from its value."""
    first = dm.Threshold(value=None, color=base)
    rest = [dm.Threshold(value=value, color=color) for value, color in steps]
    return dash.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([first, *rest])


def _ref(i: int) -> str:
    return chr(ord("A") + i)


def _queries(queries: Sequence[Query], *, instant: bool, fmt: str) -> list[prometheus.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        query = (
            prometheus.Dataquery()
            .expr(q.expr)
            .ref_id(_ref(i))
            .datasource(DATASOURCE)
            .format(pm.PromQueryFormat(fmt))
        )
        if q.legend:
            query = query.legend_format(q.legend)
        out.append(query.instant() if instant else query.range())
    return out


def _frame(
    panel: P,
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    look: Look,
    size: tuple[int, int],
) -> P:
    """What every panel has: title, description, data source, queries, size, look."""
    panel = panel.title(title).description(description).datasource(DATASOURCE)
    for query in queries:
        panel = panel.with_target(query)
    panel = panel.unit(look.unit).span(size[0]).height(size[1])
    panel = panel.thresholds(thresholds(look.base_color, look.thresholds))
    if look.min is not None:
        panel = panel.min(look.min)
    if look.max is not None:
        panel = panel.max(look.max)
    if look.decimals is not None:
        panel = panel.decimals(look.decimals)
    if look.no_value is not None:
        panel = panel.no_value(look.no_value)
    return panel


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    size: tuple[int, int] = (12, 8),
    *,
    stacked: bool = False,
) -> timeseries.Panel:
    """Lines over time, with a legend table (last, max); thresholds as dashed lines."""
    targets = _queries(queries, instant=False, fmt="time_series")
    panel = _frame(timeseries.Panel(), title, description, targets, look, size)
    legend = (
        common.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )
    tooltip = common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
    panel = (
        panel.legend(legend)
        .tooltip(tooltip.sort(cm.SortOrder.DESCENDING))
        .fill_opacity(10)
        .show_points(cm.VisibilityMode.NEVER)
        .span_nulls(False)
    )
    if look.thresholds:
        style = common.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED)
        panel = panel.thresholds_style(style)
    if stacked:
        panel = panel.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    return panel


def _reduce_last() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    size: tuple[int, int] = (4, 4),
) -> stat.Panel:
    """One big number per series (its value now), coloured by the thresholds."""
    targets = _queries(queries, instant=True, fmt="time_series")
    return (
        _frame(stat.Panel(), title, description, targets, look, size)
        .reduce_options(_reduce_last())
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .text_mode(cm.BigValueTextMode.AUTO)
    )


def bargauge_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    look: Look,
    size: tuple[int, int] = (12, 8),
) -> bargauge.Panel:
    """A horizontal bar per series now, in the order the query sorts them."""
    targets = _queries(queries, instant=True, fmt="time_series")
    return (
        _frame(bargauge.Panel(), title, description, targets, look, size)
        .reduce_options(_reduce_last())
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
    )


def heatmap_panel(
    title: str,
    description: str,
    buckets: str,
    unit: str,
    size: tuple[int, int] = (16, 9),
) -> heatmap.Panel:
    """A Prometheus histogram as a heatmap. ``buckets`` is a rate of ``_bucket`` summed
    by ``le``, taken as it is (Grafana does not recalculate the buckets), as in
    smokeping_prober's dashboard."""
    targets = _queries([Query(buckets, "{{le}}")], instant=False, fmt="heatmap")
    colors = (
        heatmap.HeatmapColorOptions()
        .mode(hm.HeatmapColorMode.SCHEME)
        .scheme("Spectral")
        .scale(hm.HeatmapColorScale.EXPONENTIAL)
        .exponent(0.5)
        .steps(64)
        .reverse(True)
    )
    return (
        _frame(heatmap.Panel(), title, description, targets, Look(unit=unit), size)
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.LE))
        .y_axis(heatmap.YAxisConfig().unit(unit).decimals(0))
        .cell_values(heatmap.CellValues().unit("short"))
        .color(colors)
        # Empty buckets stay blank rather than the scale's lowest colour.
        .filter_values(heatmap.FilterValueRange().le(1e-9))
        .show_value(cm.VisibilityMode.NEVER)
        .show_tooltip()
        .show_y_histogram()
        .show_legend()
        .exemplars_color("rgba(255,0,255,0.7)")
        # Without a field config of its own the SDK adds one when it loads the panel,
        # and the dashboard would not come back from the SDK unchanged.
        .hide_from(common.HideSeriesConfig().legend(False).tooltip(False).viz(False))
        .scale_distribution(common.ScaleDistributionConfig().type(cm.ScaleDistribution.LINEAR))
    )


def state_timeline_panel(
    title: str,
    description: str,
    query: Query,
    states: Sequence[State],
    size: tuple[int, int] = (24, 8),
) -> statetimeline.Panel:
    """One lane per series, coloured by state; ``query`` gives each state's number
    (promql.one_hot)."""
    targets = _queries([query], instant=False, fmt="time_series")
    results = {
        str(s.value): dm.ValueMappingResult(text=s.text, color=s.color, index=i)
        for i, s in enumerate(states)
    }
    legend = (
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
    )
    tooltip = common.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE)
    return (
        _frame(statetimeline.Panel(), title, description, targets, Look(), size)
        .mappings([dm.ValueMap(options=results)])
        .color_scheme(dash.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(GREY))
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.9)
        .fill_opacity(80)
        .line_width(0)
        .legend(legend)
        .tooltip(tooltip.sort(cm.SortOrder.NONE))
    )


def table_panel(
    title: str,
    description: str,
    labels: Sequence[str],
    columns: Sequence[Column],
    size: tuple[int, int] = (24, 8),
    *,
    sort: tuple[str, bool] | None = None,
    links: dict[str, str] | None = None,
    numeric_labels: Sequence[str] = (),
) -> table.Panel:
    """One row per label set now: instant queries joined on ``labels`` (Grafana's
    "merge"), then a column per query. ``sort`` is (column, descending), by default
    the first label; ``links`` turns label columns into links (a URL may use
    ``${__value.raw}``); ``numeric_labels`` sort as numbers (a TTL), not as text."""
    by = ", ".join(labels)
    # Every query aggregated to exactly ``labels``: merge joins rows on every field
    # they share, and a __name__, job or instance would keep them apart.
    joined = [Query(f"max by ({by}) ({c.expr})") for c in columns]
    targets = _queries(joined, instant=True, fmt="table")
    panel = _frame(table.Panel(), title, description, targets, Look(), size)
    for step in _table_transformations(labels, columns, numeric_labels):
        panel = panel.with_transformation(step)
    for column in columns:
        unit = dm.DynamicConfigValue(id_val="unit", value=column.unit)
        panel = panel.override_by_name(column.name, [unit])
    for label, url in (links or {}).items():
        link = dm.DynamicConfigValue(id_val="links", value=[{"title": label, "url": url}])
        panel = panel.override_by_name(label, [link])
    by_column, descending = sort or (labels[0], False)
    order = common.TableSortByFieldState().display_name(by_column).desc(descending)
    return panel.show_header(True).cell_height(cm.TableCellHeight.SM).sort_by([order])


def _table_transformations(
    labels: Sequence[str], columns: Sequence[Column], numeric_labels: Sequence[str]
) -> list[dm.DataTransformerConfig]:
    # Grafana names a lone query's value column "Value", else "Value #<refId>".
    values = ["Value"] if len(columns) == 1 else [f"Value #{_ref(i)}" for i in range(len(columns))]
    rename = {v: c.name for v, c in zip(values, columns, strict=True) if c.shown}
    keep = [*labels, *rename]
    steps = [
        dm.DataTransformerConfig(id_val="merge", options={}),
        dm.DataTransformerConfig(id_val="filterFieldsByName", options={"include": {"names": keep}}),
        dm.DataTransformerConfig(
            id_val="organize",
            options={
                "indexByName": {name: i for i, name in enumerate(keep)},
                "renameByName": rename,
            },
        ),
    ]
    if numeric_labels:
        conversions = [{"targetField": n, "destinationType": "number"} for n in numeric_labels]
        steps.append(
            dm.DataTransformerConfig(
                id_val="convertFieldType", options={"conversions": conversions}
            )
        )
    return steps

// Types the generated files (generated/*.ts, written by generate.mjs from the repository's
// grafana/dashboards/*.json) are checked against: @grafana/schema's Dashboard, and for each panel its
// plugin's Options and FieldConfig (Grafana 10.4's panel schemas) and the Prometheus query type.
import type { Dashboard, FieldConfigSource } from '@grafana/schema';
import type { FieldConfig as BaseFieldConfig } from '@grafana/schema/dist/esm/raw/dashboard/x/dashboard_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as Heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as PieChart from '@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type { PrometheusDataQuery } from '@grafana/schema/dist/esm/raw/composable/prometheus/dataquery/x/PrometheusDataQuery_types.gen';

/**
 * What a JSON document can hold for a type: the schema's TypeScript enums become the union of their
 * string values (`ThresholdsMode.Absolute` -> "absolute"), numeric enums stay (a number literal of a
 * member is assignable to them); everything else is kept, recursively, optional properties included.
 */
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

export type DashboardJson = Json<Dashboard>;

type FieldConfigJson<Custom> = Json<Omit<FieldConfigSource, 'defaults'>> & {
  defaults: Json<Omit<BaseFieldConfig, 'custom'>> & { custom?: Json<Custom> };
};

/** A panel's plugin-specific parts, as Grafana 10.4 saves them (all required options present). */
export type PanelJson<Options, Custom = never> = {
  options: Json<Options>;
  fieldConfig: FieldConfigJson<Custom>;
  targets: Array<Json<PrometheusDataQuery>>;
};

export interface Panels {
  timeseries: PanelJson<TimeSeries.Options, TimeSeries.FieldConfig>;
  stat: PanelJson<Stat.Options>;
  table: PanelJson<Table.Options, Table.FieldConfig>;
  heatmap: PanelJson<Heatmap.Options, Heatmap.FieldConfig>;
  piechart: PanelJson<PieChart.Options, PieChart.FieldConfig>;
  bargauge: PanelJson<BarGauge.Options>;
}

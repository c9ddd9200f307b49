//! Output formats, after pve-common's `PVE::CLIFormatter`.
//!
//! - `json` and `json-pretty`: keys sorted (`canonical`), as pvesh prints them.
//! - `yaml`: the same data as YAML.
//! - `table`: pvesh's default text view: an object as a key/value table, a list of objects as a
//!   table with one column per property of the reply schema (required ones first, each group
//!   sorted, rows sorted by the first column), with borders and a header (`print_text_table`).
//! - `text`: the same without borders and header (`print_api_result_plain`), for `cut`/`awk`.
//!
//! The default is `table` for structured data when stdout is a terminal and `json` otherwise,
//! so scripts get data. `--human-readable` renders the properties the schema marks with a
//! renderer (`bytes`, `duration`, `timestamp`, `fraction_as_percentage`) the way
//! `PVE::Format` does; timestamps are shown in UTC.

use std::fmt::Write as _;

use serde_json::Value;

/// `--output-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compact JSON, keys sorted.
    Json,
    /// Indented JSON, keys sorted.
    JsonPretty,
    /// YAML.
    Yaml,
    /// Plain text: no borders, no header.
    Text,
    /// Tables with borders and a header (the default on a terminal).
    Table,
}

/// How tables are drawn.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableOptions {
    /// No borders.
    pub noborder: bool,
    /// No header line.
    pub noheader: bool,
    /// Render bytes, durations, timestamps and fractions.
    pub human_readable: bool,
    /// Cut lines to this many columns (the terminal's width).
    pub columns: Option<usize>,
    /// Box-drawing characters instead of ASCII.
    pub utf8: bool,
}

/// Renders `data` in `format`; `schema` is the reply schema from `openapi.json`, if known.
pub fn render(
    data: &Value,
    schema: Option<&Value>,
    format: Format,
    options: TableOptions,
) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string(&canonical(data)).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::JsonPretty => {
            let mut text = serde_json::to_string_pretty(&canonical(data)).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Yaml => serde_yaml::to_string(&canonical(data)).unwrap_or_default(),
        Format::Text => render_text(
            data,
            schema,
            TableOptions {
                noborder: true,
                noheader: true,
                ..options
            },
        ),
        Format::Table => render_text(data, schema, options),
    }
}

/// A copy of `value` with every object's keys sorted.
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key.clone(), canonical(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `print_api_result` for the text formats.
fn render_text(data: &Value, schema: Option<&Value>, options: TableOptions) -> String {
    let schema_type = schema
        .and_then(|schema| schema.get("type"))
        .and_then(Value::as_str);
    match data {
        Value::Null => String::new(),
        Value::Object(map) => {
            let properties = schema.and_then(|schema| schema.get("properties"));
            let mut keys = properties_to_print(schema);
            if keys.is_empty() {
                keys = map.keys().cloned().collect();
                keys.sort();
            }
            let rows: Vec<Vec<String>> = keys
                .iter()
                .filter_map(|key| {
                    let value = map.get(key).filter(|value| !value.is_null())?;
                    let property = properties.and_then(|properties| properties.get(key));
                    Some(vec![key.clone(), to_text(value, property, options)])
                })
                .collect();
            let columns = [Column::text("key"), Column::text("value")];
            table(&columns, &rows, options)
        }
        Value::Array(items) if items.is_empty() => String::new(),
        Value::Array(items)
            if items.iter().all(Value::is_object)
                || schema_type == Some("array") && items.iter().all(Value::is_object) =>
        {
            let item_schema = schema.and_then(|schema| schema.get("items"));
            let properties = item_schema.and_then(|items| items.get("properties"));
            let mut keys = properties_to_print(item_schema);
            if keys.is_empty() {
                let mut all: Vec<String> = items
                    .iter()
                    .filter_map(Value::as_object)
                    .flat_map(|object| object.keys().cloned())
                    .collect();
                all.sort();
                all.dedup();
                keys = all;
            }
            let columns: Vec<Column> = keys
                .iter()
                .map(|key| {
                    let property = properties.and_then(|properties| properties.get(key));
                    Column {
                        title: key.clone(),
                        numeric: is_numeric(property),
                    }
                })
                .collect();
            let mut sorted: Vec<&Value> = items.iter().collect();
            if let Some(first) = columns.first() {
                sorted.sort_by(|a, b| {
                    compare(a.get(&first.title), b.get(&first.title), first.numeric)
                });
            }
            let rows: Vec<Vec<String>> = sorted
                .iter()
                .map(|item| {
                    keys.iter()
                        .map(|key| {
                            let property = properties.and_then(|properties| properties.get(key));
                            item.get(key)
                                .map(|value| to_text(value, property, options))
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .collect();
            table(&columns, &rows, options)
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|schema| schema.get("items"));
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|item| vec![to_text(item, item_schema, options)])
                .collect();
            let columns = [Column {
                title: "value".to_owned(),
                numeric: is_numeric(item_schema),
            }];
            table(
                &columns,
                &rows,
                TableOptions {
                    noheader: true,
                    ..options
                },
            )
        }
        Value::String(text) => format!("{text}\n"),
        other => format!("{other}\n"),
    }
}

/// One column: its title and whether it is right-aligned.
pub struct Column {
    /// The header text.
    pub title: String,
    /// Numbers are right-aligned.
    pub numeric: bool,
}

impl Column {
    /// A left-aligned column.
    pub fn text(title: &str) -> Column {
        Column {
            title: title.to_owned(),
            numeric: false,
        }
    }
}

/// `print_text_table`: the widths, borders and alignment of pvesh.
pub fn table(columns: &[Column], rows: &[Vec<String>], options: TableOptions) -> String {
    let cells: Vec<Vec<Vec<&str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| cell.split('\n').collect()).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let longest_cell = cells
                .iter()
                .filter_map(|row| row.get(index))
                .flat_map(|lines| lines.iter().map(|line| line.chars().count()))
                .max()
                .unwrap_or(0);
            longest_cell.max(column.title.chars().count())
        })
        .collect();
    let last = columns.len().saturating_sub(1);
    let border = !options.noborder;
    let format_line = |texts: &[&str]| -> String {
        let mut line = String::new();
        for (index, (column, width)) in columns.iter().zip(&widths).enumerate() {
            let text: String = texts
                .get(index)
                .copied()
                .unwrap_or("")
                .chars()
                .take(*width)
                .collect();
            let padded = if column.numeric {
                format!("{text:>width$}")
            } else {
                format!("{text:<width$}")
            };
            if border {
                let bar = if options.utf8 { '│' } else { '|' };
                let _ = write!(line, "{bar} {padded} ");
                if index == last {
                    line.push(bar);
                }
            } else if index == last {
                line.push_str(text.as_str());
            } else {
                let _ = write!(line, "{padded} ");
            }
        }
        line
    };
    let rule = |left: &str, fill: &str, middle: &str, right: &str| -> String {
        let mut line = String::new();
        for (index, width) in widths.iter().enumerate() {
            line.push_str(if index == 0 { left } else { middle });
            line.push_str(&fill.repeat(width + 2));
        }
        line.push_str(right);
        line
    };
    let (top, head, middle, bottom) = if options.utf8 {
        (
            rule("┌", "─", "┬", "┐"),
            rule("╞", "═", "╪", "╡"),
            rule("├", "─", "┼", "┤"),
            rule("└", "─", "┴", "┘"),
        )
    } else {
        let middle = rule("+", "-", "+", "+");
        (
            middle.clone(),
            rule("+", "=", "+", "+"),
            middle.clone(),
            middle,
        )
    };

    let mut lines: Vec<String> = Vec::new();
    if border {
        lines.push(top);
    }
    let mut separator = if options.noheader { &middle } else { &head };
    if !options.noheader {
        let titles: Vec<&str> = columns.iter().map(|column| column.title.as_str()).collect();
        lines.push(format_line(&titles));
    }
    for (row_index, row) in cells.iter().enumerate() {
        if border && (row_index != 0 || !options.noheader) {
            lines.push(separator.clone());
            separator = &middle;
        }
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for line_index in 0..height {
            let texts: Vec<&str> = row
                .iter()
                .map(|lines| lines.get(line_index).copied().unwrap_or(""))
                .collect();
            lines.push(format_line(&texts));
        }
    }
    if border {
        lines.push(bottom);
    }
    let mut out = String::new();
    for line in lines {
        let line = line.trim_end_matches(' ');
        match options.columns {
            Some(columns) => out.extend(line.chars().take(columns)),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `extract_properties_to_print`: required properties sorted, then optional ones sorted.
fn properties_to_print(schema: Option<&Value>) -> Vec<String> {
    let Some(properties) = schema
        .and_then(|schema| schema.get("properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .and_then(|schema| schema.get("required"))
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (mut first, mut second): (Vec<String>, Vec<String>) = properties
        .keys()
        .cloned()
        .partition(|key| required.contains(&key.as_str()));
    first.sort();
    second.sort();
    first.extend(second);
    first
}

fn is_numeric(property: Option<&Value>) -> bool {
    matches!(
        property.and_then(|p| p.get("type")).and_then(Value::as_str),
        Some("integer" | "number")
    )
}

fn compare(a: Option<&Value>, b: Option<&Value>, numeric: bool) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) if numeric => {
            let number = |v: &Value| {
                v.as_f64()
                    .or_else(|| v.as_str()?.parse().ok())
                    .unwrap_or(0.0)
            };
            number(a).total_cmp(&number(b))
        }
        (Some(a), Some(b)) => plain(a).cmp(&plain(b)),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `data_to_text`: booleans as 1/0, renderers when human-readable, structures as JSON.
fn to_text(value: &Value, property: Option<&Value>, options: TableOptions) -> String {
    let is_boolean = property
        .and_then(|p| p.get("x-proxmox-type").or_else(|| p.get("type")))
        .and_then(Value::as_str)
        == Some("boolean");
    if is_boolean {
        let truthy = match value {
            Value::Bool(flag) => *flag,
            Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
            Value::String(text) => !text.is_empty() && text != "0",
            _ => false,
        };
        return if truthy { "1" } else { "0" }.to_owned();
    }
    if options.human_readable
        && let Some(renderer) = property
            .and_then(|p| p.get("x-proxmox-renderer"))
            .and_then(Value::as_str)
        && let Some(number) = value.as_f64().or_else(|| value.as_str()?.parse().ok())
        && let Some(text) = render_with(renderer, number)
    {
        return text;
    }
    match value {
        Value::String(text) => text.clone(),
        Value::Object(_) | Value::Array(_) => {
            serde_json::to_string(&canonical(value)).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

/// `PVE::Format`'s renderers.
pub fn render_with(renderer: &str, value: f64) -> Option<String> {
    match renderer {
        "bytes" => Some(render_bytes(value)),
        "duration" => Some(render_duration(value)),
        "fraction_as_percentage" => Some(format!("{:.2}%", value * 100.0)),
        "timestamp" | "timestamp_gmt" => Some(render_timestamp(value as i64)),
        _ => None,
    }
}

fn render_bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit = 0;
    let mut scaled = value;
    while scaled >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{scaled:.2} {}", UNITS[unit])
    }
}

fn render_duration(value: f64) -> String {
    let total = value.max(0.0) as u64;
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if days > 0 || hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if days > 0 || hours > 0 || minutes > 0 {
        parts.push(format!("{minutes}m"));
    }
    parts.push(format!("{seconds}s"));
    parts.join(" ")
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (days-from-civil, no time zone database).
fn render_timestamp(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let seconds = epoch.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn renderers() {
        assert_eq!(render_bytes(512.0), "512 B");
        assert_eq!(render_bytes(2_147_483_648.0), "2.00 GiB");
        assert_eq!(render_duration(93_784.0), "1d 2h 3m 4s");
        assert_eq!(render_duration(59.0), "59s");
        assert_eq!(render_timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(render_timestamp(1_700_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn tables_like_pvesh() {
        let data = json!([{"name": "b", "n": 10}, {"name": "a", "n": 2}]);
        let schema = json!({"type": "array", "items": {"type": "object",
            "required": ["name"], "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}}});
        let text = render(&data, Some(&schema), Format::Table, TableOptions::default());
        assert_eq!(
            text,
            "+------+----+\n| name |  n |\n+======+====+\n| a    |  2 |\n+------+----+\n| b    | 10 |\n+------+----+\n"
        );
        let plain = render(&data, Some(&schema), Format::Text, TableOptions::default());
        assert_eq!(plain, "a    2\nb    10\n");
        let json = render(
            &json!({"b": 1, "a": true}),
            None,
            Format::Json,
            TableOptions::default(),
        );
        assert_eq!(json, "{\"a\":true,\"b\":1}\n");
    }
}

//! Messages in files (proto JSON, or YAML converted to JSON) decoded against
//! the contracts' descriptors, and responses printed as canonical proto JSON.
//!
//! A file is first walked against the message descriptor so that a mistake
//! is reported with its path (`fit_rules[1].attribute: unknown value ...`),
//! then decoded with prost-reflect and transcoded into the generated type.

use std::path::Path;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions};
use serde_json::Value;

fn pool() -> anyhow::Result<&'static DescriptorPool> {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    if let Some(p) = POOL.get() {
        return Ok(p);
    }
    let p = DescriptorPool::decode(qualify_proto::FILE_DESCRIPTOR_SET)?;
    Ok(POOL.get_or_init(|| p))
}

/// The descriptor of `full_name` (`qualify.scoring.v1.Scorecard`).
pub fn descriptor(full_name: &str) -> anyhow::Result<MessageDescriptor> {
    pool()?
        .get_message_by_name(full_name)
        .ok_or_else(|| anyhow::anyhow!("{full_name} is not in the Qualify descriptors"))
}

/// Reads `path` (`.yaml`/`.yml` as YAML, anything else as JSON) into a JSON value.
pub fn read_value(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
    if yaml {
        serde_yaml_ng::from_str::<Value>(&text).map_err(|e| anyhow::anyhow!("{}: not valid YAML: {e}", path.display()))
    } else {
        serde_json::from_str::<Value>(&text).map_err(|e| anyhow::anyhow!("{}: not valid JSON: {e}", path.display()))
    }
}

/// Decodes a JSON value as the message `full_name` into its generated type.
/// Errors name the path of every bad field.
pub fn from_value<T: prost::Message + Default>(value: Value, full_name: &str) -> anyhow::Result<T> {
    let desc = descriptor(full_name)?;
    let mut problems = Vec::new();
    check_message(&desc, &value, "", &mut problems);
    if !problems.is_empty() {
        anyhow::bail!("not a valid {full_name}:\n  {}", problems.join("\n  "));
    }
    let dynamic =
        DynamicMessage::deserialize(desc, value).map_err(|e| anyhow::anyhow!("not a valid {full_name}: {e}"))?;
    Ok(dynamic.transcode_to::<T>()?)
}

/// Reads and decodes a file holding one `full_name` message.
pub fn from_file<T: prost::Message + Default>(path: &Path, full_name: &str) -> anyhow::Result<T> {
    let value = read_value(path)?;
    from_value(value, full_name).map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))
}

/// `message` (of type `full_name`) as canonical proto JSON.
pub fn to_value<T: prost::Message>(message: &T, full_name: &str) -> anyhow::Result<Value> {
    let desc = descriptor(full_name)?;
    let dynamic = DynamicMessage::decode(desc, message.encode_to_vec().as_slice())?;
    let value = dynamic.serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())?;
    Ok(value)
}

/// Prints `message` as pretty canonical proto JSON.
pub fn print_json<T: prost::Message>(message: &T, full_name: &str) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&to_value(message, full_name)?)?);
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn check_message(desc: &MessageDescriptor, v: &Value, path: &str, problems: &mut Vec<String>) {
    if desc.full_name().starts_with("google.protobuf.") {
        // Well-known types have JSON forms of their own (a Timestamp is an RFC 3339 string):
        // decode them alone to place any error.
        if let Err(e) = DynamicMessage::deserialize(desc.clone(), v.clone()) {
            problems.push(format!("{}: {e}", if path.is_empty() { "(top)" } else { path }));
        }
        return;
    }
    let Value::Object(fields) = v else {
        let at = if path.is_empty() { "the file" } else { path };
        problems.push(format!("{at}: expected an object ({}), found {}", desc.full_name(), kind_of(v)));
        return;
    };
    for (key, value) in fields {
        let at = join(path, key);
        let Some(field) = desc.get_field_by_json_name(key).or_else(|| desc.get_field_by_name(key)) else {
            let names: Vec<_> = desc.fields().map(|f| f.name().to_string()).collect();
            problems.push(format!("{at}: unknown field of {} (fields: {})", desc.full_name(), names.join(", ")));
            continue;
        };
        if value.is_null() {
            continue;
        }
        check_field(&field, value, &at, problems);
    }
}

fn check_field(field: &FieldDescriptor, v: &Value, at: &str, problems: &mut Vec<String>) {
    if field.is_map() {
        let Value::Object(entries) = v else {
            problems.push(format!("{at}: expected an object (a map), found {}", kind_of(v)));
            return;
        };
        if let Kind::Message(entry) = field.kind() {
            let value_field = entry.map_entry_value_field();
            for (k, item) in entries {
                check_kind(&value_field.kind(), item, &format!("{at}[{k:?}]"), problems);
            }
        }
        return;
    }
    if field.is_list() {
        let Value::Array(items) = v else {
            problems.push(format!("{at}: expected a list, found {}", kind_of(v)));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            check_kind(&field.kind(), item, &format!("{at}[{i}]"), problems);
        }
        return;
    }
    check_kind(&field.kind(), v, at, problems);
}

fn check_kind(kind: &Kind, v: &Value, at: &str, problems: &mut Vec<String>) {
    let integer = |v: &Value| match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        Value::String(s) => s.trim().parse::<i128>().is_ok(),
        _ => false,
    };
    let ok = match kind {
        Kind::Message(m) => return check_message(m, v, at, problems),
        Kind::Enum(e) => match v {
            Value::String(s) if e.get_value_by_name(s).is_some() => true,
            Value::Number(n) if n.is_i64() => true,
            _ => {
                let names: Vec<_> = e.values().map(|x| x.name().to_string()).collect();
                problems.push(format!("{at}: unknown value {v} of {} (one of: {})", e.full_name(), names.join(", ")));
                return;
            }
        },
        Kind::Bool => v.is_boolean(),
        Kind::String | Kind::Bytes => v.is_string(),
        Kind::Double | Kind::Float => {
            v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok() || s == "Infinity" || s == "-Infinity")
        }
        _ => integer(v),
    };
    if !ok {
        let want = match kind {
            Kind::Bool => "a boolean",
            Kind::String => "a string",
            Kind::Bytes => "a base64 string",
            Kind::Double | Kind::Float => "a number",
            _ => "an integer",
        };
        problems.push(format!("{at}: expected {want}, found {v}"));
    }
}

//! The hard rule of spec §2.1: for every value, Python's `ast.literal_eval` of the
//! literal nbexec writes gives back exactly that value (non-finite floats through
//! `float('nan'|'inf'|'-inf')`), and the literal stays one assignment in the cell.
//!
//! One `python3` process serves every case: the test sends each literal as a JSON
//! line and Python answers with a canonical encoding of what it evaluated (floats as
//! their IEEE bits, strings as UTF-8 hex), which is compared exactly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use nbexec_params::{Integer, PythonTranslator, Translator, Value};
use proptest::prelude::*;

const ORACLE: &str = r##"
import ast, json, struct, sys
sys.set_int_max_str_digits(0)

def enc(v):
    t = type(v)
    if v is None: return "N"
    if t is bool: return "T" if v else "F"
    if t is int: return "i" + str(v)
    if t is float: return "fnan" if v != v else "f" + struct.pack(">d", v).hex()
    if t is str: return "s" + v.encode("utf-8").hex()
    if t is list: return "[" + ",".join(enc(x) for x in v) + "]"
    if t is dict: return "{" + ",".join(enc(k) + ":" + enc(x) for k, x in v.items()) + "}"
    raise TypeError(t)

NONFINITE = ("nan", "inf", "-inf")

def ev(n):
    # literal_eval's grammar plus float('nan'|'inf'|'-inf'); nothing else.
    if isinstance(n, ast.Constant) and type(n.value) in (str, int, float, bool, type(None)):
        return n.value
    if (isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub)
            and isinstance(n.operand, ast.Constant) and type(n.operand.value) in (int, float)):
        return -n.operand.value
    if isinstance(n, ast.List):
        return [ev(e) for e in n.elts]
    if isinstance(n, ast.Dict):
        d = {}
        for k, v in zip(n.keys, n.values):
            if k is None:
                raise ValueError("dict unpacking")
            kk = ev(k)
            if kk in d:
                raise ValueError("repeated key")
            d[kk] = ev(v)
        return d
    if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "float"
            and len(n.args) == 1 and not n.keywords and isinstance(n.args[0], ast.Constant)
            and n.args[0].value in NONFINITE):
        return float(n.args[0].value)
    raise ValueError("not a literal: " + ast.dump(n)[:200])

for line in sys.stdin:
    src = json.loads(line)
    try:
        tree = ast.parse(src, mode="eval")
        out = enc(ev(tree.body))
        if not any(isinstance(x, ast.Call) for x in ast.walk(tree)):
            real = enc(ast.literal_eval(src))
            if real != out:
                out = "MISMATCH literal_eval gave " + real
        cell = ast.parse("# Parameters\nx = " + src + "\n")
        if len(cell.body) != 1 or not isinstance(cell.body[0], ast.Assign):
            out = "NOT ONE ASSIGNMENT"
    except Exception as e:
        out = "ERROR " + repr(e)[:300]
    print(out, flush=True)
"##;

struct Oracle {
    // Kept so the process is owned; it exits at EOF when the test binary ends.
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn oracle() -> &'static Mutex<Oracle> {
    static ORACLE_PROCESS: OnceLock<Mutex<Oracle>> = OnceLock::new();
    ORACLE_PROCESS.get_or_init(|| {
        let mut child = Command::new("python3")
            .args(["-c", ORACLE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed as the literal_eval oracle");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Mutex::new(Oracle {
            _child: child,
            stdin,
            stdout,
        })
    })
}

fn python_eval(literal: &str) -> String {
    let mut o = oracle().lock().unwrap_or_else(|e| e.into_inner());
    let line = serde_json::to_string(literal).unwrap();
    writeln!(o.stdin, "{line}").unwrap();
    o.stdin.flush().unwrap();
    let mut answer = String::new();
    o.stdout.read_line(&mut answer).unwrap();
    answer.trim_end_matches('\n').to_owned()
}

/// The encoding the oracle prints, computed from the Rust value.
fn encode(v: &Value, out: &mut String) {
    match v {
        Value::None => out.push('N'),
        Value::Bool(b) => out.push(if *b { 'T' } else { 'F' }),
        Value::Int(i) => {
            out.push('i');
            out.push_str(i.as_str());
        }
        Value::Float(f) if f.is_nan() => out.push_str("fnan"),
        Value::Float(f) => out.push_str(&format!("f{:016x}", f.to_bits())),
        Value::Str(s) => {
            out.push('s');
            for b in s.as_bytes() {
                out.push_str(&format!("{b:02x}"));
            }
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(item, out);
            }
            out.push(']');
        }
        Value::Dict(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(&Value::Str(k.clone()), out);
                out.push(':');
                encode(v, out);
            }
            out.push('}');
        }
        other => panic!("not a literal value: {other:?}"),
    }
}

fn check(value: &Value) -> Result<(), TestCaseError> {
    let literal = PythonTranslator.literal("x", value).unwrap();
    let mut want = String::new();
    encode(value, &mut want);
    let got = python_eval(&literal);
    prop_assert_eq!(got, want, "literal: {}", literal);
    Ok(())
}

fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec!['"', '\'', '\\', '\n', '\r', '\t', '\0', '\x7f', '\x1f', '\u{80}', '\u{ff}', '\u{100}', '\u{2028}', '\u{feff}', '\u{ffff}', '\u{10000}', '\u{10ffff}', '{', '}', '#', 'x', 'u', 'U', 'N']),
        2 => prop::char::range(' ', '~'),
    ]
}

fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..24).prop_map(|cs| cs.into_iter().collect())
}

fn integer() -> impl Strategy<Value = Integer> {
    prop_oneof![
        10 => any::<i64>().prop_map(Integer::from),
        10 => (any::<bool>(), prop::collection::vec(0u8..10, 1..60)).prop_map(|(neg, digits)| {
            let text: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            Integer::parse(&format!("{}{text}", if neg { "-" } else { "" })).unwrap()
        }),
        1 => any::<bool>().prop_map(|neg| {
            // Past Python 3.11's 4300-digit str/int conversion limit.
            let text = "9".repeat(4400);
            Integer::parse(&format!("{}{text}", if neg { "-" } else { "" })).unwrap()
        }),
    ]
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
        (0u64..1 << 52).prop_map(f64::from_bits),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            f64::MIN,
            1e16,
            1e-5,
            0.1,
            1e22
        ]),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        integer().prop_map(Value::Int),
        float().prop_map(Value::Float),
        tricky_string().prop_map(Value::Str),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(8, 64, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::vec((tricky_string(), inner), 0..6).prop_map(|entries| {
                let mut unique: Vec<(String, Value)> = Vec::new();
                for (k, v) in entries {
                    if !unique.iter().any(|(u, _)| *u == k) {
                        unique.push((k, v));
                    }
                }
                Value::Dict(unique)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn python_literal_evaluates_back_to_the_value(v in value()) {
        check(&v)?;
    }
}

#[test]
fn deep_nesting_round_trips() {
    // CPython's parser refuses more than 200 nested brackets; 90 levels of list and
    // dict alternating stay within what any kernel can parse.
    let mut v = Value::Str("bottom \" \\".to_owned());
    for depth in 0..90 {
        v = if depth % 2 == 0 {
            Value::List(vec![v, Value::int(depth)])
        } else {
            Value::Dict(vec![(format!("k{depth}"), v)])
        };
    }
    check(&v).unwrap();
}

#[test]
fn every_non_surrogate_code_point_round_trips() {
    // In chunks, so each literal stays a reasonable size.
    let all: Vec<char> = (0..=0x10ffffu32).filter_map(char::from_u32).collect();
    for chunk in all.chunks(8192) {
        check(&Value::Str(chunk.iter().collect())).unwrap();
    }
}

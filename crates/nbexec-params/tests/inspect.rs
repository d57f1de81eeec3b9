//! Inspection of the `parameters` cell (spec §2.4, papermill `--help-notebook`).

use nbexec_format::read_str;
use nbexec_params::{ParamError, ParamSpec, TypeSource, inspect_notebook, inspect_python};
use serde_json::json;

fn spec(
    name: &str,
    ty: Option<&str>,
    source: TypeSource,
    default: Option<&str>,
    help: &str,
    line: usize,
) -> ParamSpec {
    ParamSpec {
        name: name.into(),
        type_name: ty.map(str::to_owned),
        type_source: source,
        default: default.map(str::to_owned),
        help: help.into(),
        line,
    }
}

/// (name, papermill's type name, default, help)
type Row = (String, String, String, String);

fn brief(specs: &[ParamSpec]) -> Vec<Row> {
    specs
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.papermill_type_name().to_owned(),
                p.default.clone().unwrap_or_default(),
                p.help.clone(),
            )
        })
        .collect()
}

fn row(name: &str, ty: &str, default: &str, help: &str) -> Row {
    (name.into(), ty.into(), default.into(), help.into())
}

#[test]
fn papermill_inspect_cases_give_papermill_results_with_inferred_types() {
    // papermill/tests/test_translators.py `test_inspect_python`; where papermill says
    // "None" (no annotation, no type comment) nbexec infers the type from the default.
    let cases: Vec<(&str, Vec<Row>)> = vec![
        ("a = 2", vec![row("a", "int", "2", "")]),
        ("a: int = 2", vec![row("a", "int", "2", "")]),
        ("a = 2 # type:int", vec![row("a", "int", "2", "")]),
        (
            "a = False # Nice variable a",
            vec![row("a", "bool", "False", "Nice variable a")],
        ),
        (
            "a: float = 2.258 # type: int Nice variable a",
            vec![row("a", "float", "2.258", "Nice variable a")],
        ),
        (
            "a = 'this is a string' # type: int Nice variable a",
            vec![row("a", "int", "'this is a string'", "Nice variable a")],
        ),
        (
            "a: List[str] = ['this', 'is', 'a', 'string', 'list'] # Nice variable a",
            vec![row(
                "a",
                "List[str]",
                "['this', 'is', 'a', 'string', 'list']",
                "Nice variable a",
            )],
        ),
        (
            "a: List[str] = [\n    'this', # First\n    'is',\n    'a',\n    'string',\n    'list' # Last\n] # Nice variable a",
            vec![row(
                "a",
                "List[str]",
                "['this','is','a','string','list']",
                "Nice variable a",
            )],
        ),
        (
            "a: List[str] = [\n    'this',\n    'is',\n    'a',\n    'string',\n    'list'\n] # Nice variable a",
            vec![row(
                "a",
                "List[str]",
                "['this','is','a','string','list']",
                "Nice variable a",
            )],
        ),
        (
            "a: List[str] = [\n                'this', # First\n                'is',\n\n                'a',\n                'string',\n                'list' # Last\n            ] # Nice variable a\n\n            b: float = -2.3432 # My b variable\n            ",
            vec![
                row(
                    "a",
                    "List[str]",
                    "['this','is','a','string','list']",
                    "Nice variable a",
                ),
                row("b", "float", "-2.3432", "My b variable"),
            ],
        ),
    ];
    for (source, want) in cases {
        assert_eq!(brief(&inspect_python(source)), want, "{source:?}");
    }
}

#[test]
fn annotation_type_comment_inferred_and_unknown_sources() {
    let got = inspect_python("a: int = 1\nb = 2  # type: float\nc = 'x'\nd = compute()\n");
    assert_eq!(
        got,
        vec![
            spec("a", Some("int"), TypeSource::Annotation, Some("1"), "", 1),
            spec(
                "b",
                Some("float"),
                TypeSource::TypeComment,
                Some("2"),
                "",
                2
            ),
            spec("c", Some("str"), TypeSource::Inferred, Some("'x'"), "", 3),
            spec("d", None, TypeSource::Unknown, Some("compute()"), "", 4),
        ]
    );
    assert_eq!(got[3].papermill_type_name(), "None");
}

#[test]
fn help_is_the_trailing_comment() {
    let got = inspect_python(
        "alpha = 0.1  # learning rate # really\nbeta = 2 #\ngamma = 3 # type: ignore  skip me\n",
    );
    assert_eq!(got[0].help, "learning rate # really");
    assert_eq!(got[1].help, "");
    assert_eq!(
        got[2].type_name.as_deref(),
        Some("int"),
        "type: ignore is not a type"
    );
    assert_eq!(got[2].help, "skip me");
}

#[test]
fn strings_and_brackets_are_understood() {
    let src = "url = \"http://x/?a=b#frag\"  # the endpoint\n\
               opts = dict(a=1, b='=')\n\
               a = 1; b = 2\n\
               text = '''line one\n  # not a comment = here\nline three'''  # doc\n\
               pattern = r'\\d+'  # digits\n\
               flag = x == 1\n";
    let got = inspect_python(src);
    let names: Vec<&str> = got.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["url", "opts", "a", "b", "text", "pattern", "flag"]);
    assert_eq!(got[0].default.as_deref(), Some("\"http://x/?a=b#frag\""));
    assert_eq!(got[0].help, "the endpoint");
    assert_eq!(got[1].default.as_deref(), Some("dict(a=1, b='=')"));
    assert_eq!(got[1].type_name.as_deref(), Some("dict"));
    assert_eq!(got[3].line, 3);
    assert_eq!(
        got[4].default.as_deref(),
        Some("'''line one\n  # not a comment = here\nline three'''"),
        "a triple-quoted default keeps its text"
    );
    assert_eq!(got[4].help, "doc");
    assert_eq!(got[4].line, 4);
    assert_eq!(got[5].default.as_deref(), Some("r'\\d+'"));
    assert_eq!(got[6].default.as_deref(), Some("x == 1"));
}

#[test]
fn multi_line_defaults_are_flattened() {
    let got = inspect_python(
        "config = {\n    'a': 1,  # first\n    'b': [2,\n          3],\n}  # settings\nnext_one = 4\n",
    );
    assert_eq!(got[0].default.as_deref(), Some("{'a': 1,'b': [2,3],}"));
    assert_eq!(got[0].type_name.as_deref(), Some("dict"));
    assert_eq!(got[0].help, "settings");
    assert_eq!(got[1].line, 6);
    let got = inspect_python("total = 1 + \\\n    2  # sum\n");
    assert_eq!(got[0].default.as_deref(), Some("1 +2"));
    assert_eq!(got[0].help, "sum");
}

#[test]
fn other_statement_forms() {
    let got = inspect_python(
        "import os\n\
         x: int\n\
         y: 'Optional[str]' = None\n\
         a = b = 5\n\
         c, d = 1, 2\n\
         e += 1\n\
         obj.attr = 1\n\
         items[0] = 1\n\
         f = lambda v=1: v\n\
         if True:\n    g = 1\n\
         def helper(h=1):\n    inner = 2\n    return inner\n\
         class K:\n    field = 3\n\
         after = 'end'\n\
         print(x)\n",
    );
    let got: Vec<(&str, Option<&str>, Option<&str>)> = got
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.type_name.as_deref(),
                p.default.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("x", Some("int"), None),
            ("y", Some("Optional[str]"), Some("None")),
            ("a", Some("int"), Some("5")),
            ("b", Some("int"), Some("5")),
            ("f", None, Some("lambda v=1: v")),
            ("g", Some("int"), Some("1")),
            ("after", Some("str"), Some("'end'")),
        ]
    );
}

#[test]
fn datetime_declarations() {
    let got = inspect_python(
        "import datetime\n\
         a = datetime.datetime(2020, 1, 1)\n\
         b: datetime.date = None\n\
         c = None  # type: datetime\n\
         d: 'Optional[datetime]' = None\n\
         e = datetime.datetime.now(datetime.timezone.utc)\n\
         f = pd.Timestamp('2020-01-01')\n\
         g = 'datetime'\n\
         update_count = 3\n\
         h: int = 0\n",
    );
    let dated: Vec<&str> = got
        .iter()
        .filter(|p| p.is_datetime())
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(dated, ["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn json_form_has_papermill_keys() {
    let got = inspect_python("a = 1  # one\nb: x.Y = c\n");
    assert_eq!(
        got[0].to_json(),
        json!({"name": "a", "inferred_type_name": "int", "default": "1", "help": "one",
               "type_source": "inferred", "line": 1})
    );
    assert_eq!(got[1].to_json()["inferred_type_name"], "x.Y");
}

fn nb(cells: serde_json::Value, kernel: &str, language: &str) -> nbexec_format::Notebook {
    read_str(
        &json!({"cells": cells, "metadata": {"kernelspec": {"name": kernel, "language": language}},
                "nbformat": 4, "nbformat_minor": 5})
        .to_string(),
    )
    .unwrap()
}

#[test]
fn notebook_inspection_uses_the_first_parameters_cell() {
    let cells = json!([
        {"cell_type": "markdown", "metadata": {}, "source": "x = 1"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": ["alpha = 0.1\n", "beta = 'b'"],
         "outputs": [], "execution_count": null},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "gamma = 1",
         "outputs": [], "execution_count": null}
    ]);
    let inspection = inspect_notebook(&nb(cells, "python3", "python"), None, None)
        .unwrap()
        .unwrap();
    assert_eq!(inspection.cell_index, 1);
    let names: Vec<&str> = inspection
        .parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(inspection.declares("beta") && !inspection.declares("gamma"));
}

#[test]
fn no_parameters_cell_is_none() {
    let cells = json!([{"cell_type": "code", "metadata": {}, "source": "a = 1", "outputs": [], "execution_count": null}]);
    assert_eq!(
        inspect_notebook(&nb(cells, "python3", "python"), None, None),
        Ok(None)
    );
}

#[test]
fn other_languages_cannot_be_inspected() {
    let cells = json!([{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "a <- 1",
                        "outputs": [], "execution_count": null}]);
    let err = inspect_notebook(&nb(cells, "ir", "R"), None, None).unwrap_err();
    assert_eq!(
        err,
        ParamError::InspectionUnsupported {
            language: "R".into()
        }
    );
}

#[test]
fn a_large_cell_is_inspected_in_linear_time() {
    let source: String = (0..20_000)
        .map(|i| format!("p{i} = {i}  # help {i}\n"))
        .collect();
    let started = std::time::Instant::now();
    let got = inspect_python(&source);
    assert_eq!(got.len(), 20_000);
    assert_eq!(got[19_999].line, 20_000);
    assert_eq!(got[19_999].help, "help 19999");
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

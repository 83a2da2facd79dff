"""Fill in the expected output of every testdata/render/*.txtar case from
Python jinja2, configured the way transformers' apply_chat_template does.

Usage (needs jinja2 3.x): python3 jinja2ref.py [render/NAME.txtar ...]

Each archive has a "template" file and optionally "messages.json". This
script writes "want" with jinja2's output, or, when jinja2 raises, removes
"want" and makes sure an "error" file exists (its text is the substring the
Go test expects in our error message; the script keeps what is there and
records jinja2's own message in the archive comment). Every file's data is
its text plus one final newline, which the Go test strips.
"""
import datetime
import glob
import json
import sys

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

MESSAGES = [
    {"role": "system", "content": "  Be brief.  "},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class Generation(Extension):
    """{% generation %}...{% endgeneration %} as transformers' AssistantTracker
    renders it when no assistant mask is requested: the body, in its own scope."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, Generation])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    # The Go test pins the clock to the same instant.
    env.globals["strftime_now"] = lambda fmt: datetime.datetime(2024, 7, 6, 15, 4, 5).strftime(fmt)
    return env


def parse(text):
    comment, files, name = [], {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("-- ") and line.rstrip("\n").endswith(" --"):
            name = line[3:].rstrip("\n")[:-3]
            files[name] = ""
        elif name is None:
            comment.append(line)
        else:
            files[name] += line
    return "".join(comment), files


def fmt(comment, files):
    out = comment
    for name, data in files.items():
        out += "-- %s --\n%s" % (name, data)
    return out


def main(paths):
    env = environment()
    for path in paths or sorted(glob.glob("render/*.txtar")):
        with open(path, encoding="utf-8") as f:
            comment, files = parse(f.read())
        comment = "".join(l for l in comment.splitlines(keepends=True) if not l.startswith("jinja2: "))
        strip = lambda s: s[:-1] if s.endswith("\n") else s
        source = strip(files["template"])
        variables = dict(messages=MESSAGES, add_generation_prompt=True, bos_token="<s>",
                         eos_token="</s>", unk_token="<unk>", pad_token="</s>",
                         tools=None, documents=None)
        if "messages.json" in files:
            variables["messages"] = json.loads(files["messages.json"])
        if "add_generation_prompt: false" in comment:
            variables["add_generation_prompt"] = False
        try:
            out = env.from_string(source).render(**variables)
            files.pop("error", None)
            files["want"] = out + "\n"
        except Exception as e:
            files.pop("want", None)
            files.setdefault("error", "\n")
            comment += "jinja2: %s: %s\n" % (type(e).__name__, str(e).replace("\n", " "))
        with open(path, "w", encoding="utf-8") as f:
            f.write(fmt(comment, files))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The new-run form: name, data, layers, K, batch, lr, epochs, device (what torch sees), precision and
the semi-supervised options; it launches ``bihm train`` as a child process and opens the run's live view.

Every field is checked as it is typed, with the rules of ``bihm train`` (``runner/preflight.py``
for the name and the data set, the engine's TrainConfig for the numbers): a rejected value stays
as typed, with the reason next to it. Nothing is launched while a field has a problem. The first
field has focus, so letters type; leaving a changed form asks first.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Header, Input, Label, Select, Static

from bihm_app.errors import BihmError
from bihm_app.tui.form_fields import FIELDS, NUMBERS, SELECTS, TEXTS, WIDE, data_choices, fid, parse_number
from bihm_app.tui.launcher import NewRunSpec
from bihm_app.tui.screens.base import BihmScreen, text_input
from bihm_app.tui.widgets.key_footer import KeyFooter

#: Fields checked as they change: the numbers, the texts, and the data and precision selects.
CHECKED = (*NUMBERS, *TEXTS, "data", "precision")


class NewRunScreen(BihmScreen):
    """Fill in the form, press Start (or ctrl+s)."""

    CSS_PATH = "new_run.tcss"

    BINDINGS = [
        Binding("escape", "back", "Cancel", tooltip="Back without starting a run (asks if you changed the form)"),
        Binding("ctrl+s", "launch", "Start", tooltip="Start training with these settings"),
    ]
    LETTERS_TYPE = True  # q and ? never quit or help here; ctrl+q and f1 do (the footer shows them)
    AUTO_FOCUS = "#f-name"  # letters type into the first field (q never quits from this form)

    def __init__(self, defaults: NewRunSpec | None = None) -> None:
        super().__init__()
        self.defaults = defaults or NewRunSpec()
        self.launched: str | None = None
        self.problems: dict[str, str] = {}  # field -> why its value is refused, as shown
        self._initial: dict[str, object] = {}

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        d = self.defaults
        blink = self.app.cursor_blink  # type: ignore[attr-defined]
        yield Header(show_clock=False)
        with VerticalScroll(id="nr-body"):
            for field, label, hint in FIELDS:
                msg = Static(hint, id="m" + fid(field)[1:], classes="nr-msg", markup=False)
                msg.display = bool(hint)
                with Horizontal(classes="nr-row"):
                    yield Label(label, classes="nr-label")
                    if field in WIDE:  # long choices: the whole width, a problem on the line below
                        with Vertical(classes="nr-wide"):
                            yield self._widget(field, d, blink)
                            yield msg
                    else:
                        with Vertical(classes="nr-field"):
                            yield self._widget(field, d, blink)
                        yield msg
            yield Checkbox("quick validation (1000 points, 10⁴ Z samples)", d.quick, id="f-quick", compact=True,
                           classes="nr-row")  # fmt: skip
            yield Static("", id="new-run-devices")
            with Horizontal(id="new-run-buttons"):
                yield Button("Start", id="start", variant="success", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
        yield KeyFooter()

    def _widget(self, field: str, d: NewRunSpec, blink: bool):
        wid = fid(field)
        if field == "data":
            choices = data_choices()
            values = [v for _, v in choices]
            return Select(choices, value=d.data if d.data in values else values[0], allow_blank=False, id=wid, compact=True)
        if field == "device":
            return Select([("auto", "auto")], value="auto", allow_blank=False, id=wid, compact=True)
        if field == "precision":
            return Select([("fp32", "fp32"), ("bf16 (fp32 weights)", "bf16")], value=d.precision,
                          allow_blank=False, id=wid, compact=True)  # fmt: skip
        if field == "label_at":
            return Select([("top (eq. 4.2)", "top"), ("bottom (eq. 4.6)", "bottom")], value=d.label_at,
                          allow_blank=False, id=wid, compact=True)  # fmt: skip
        if field == "label_proposal":
            return Select([("q (eq. 4.4)", "q"), ("mixed (eq. 4.11)", "mixed"), ("sum over y", "sum")],
                          value=d.label_proposal, allow_blank=False, id=wid, compact=True)  # fmt: skip
        value = getattr(d, field)
        text = repr(value) if isinstance(value, float) else str(value)
        # plain text inputs: a typed value is never altered or dropped, a bad one is explained below it
        return text_input(blink, text, id=wid, compact=True, select_on_focus=False)

    def on_mount(self) -> None:
        self.title = "new run"
        self._initial = self._raw()
        self._check("data")
        from bihm_app.tui.devices import list_devices

        self.in_thread(list_devices, done=self._devices, group="devices")

    def _devices(self, devices: list[tuple[str, str]]) -> None:
        sel = self.query_one("#f-device", Select)
        sel.set_options(devices)
        wanted = self.defaults.device
        sel.value = wanted if wanted in [v for _, v in devices] else "auto"
        self._initial["device"] = sel.value
        self.query_one("#new-run-devices", Static).update(
            "[b]torch sees[/b]: " + " · ".join(label for label, value in devices if value != "auto")
        )

    # -- values and their checks -----------------------------------------------------------------
    def _raw(self) -> dict[str, object]:
        """What the widgets hold now, as typed (for 'is the form changed?')."""
        raw: dict[str, object] = {}
        for field, _, _ in FIELDS:
            if field in SELECTS:
                raw[field] = self.query_one(f"#{fid(field)}", Select).value
            else:
                raw[field] = self.query_one(f"#{fid(field)}", Input).value
        raw["quick"] = self.query_one("#f-quick", Checkbox).value
        return raw

    @property
    def dirty(self) -> bool:
        """True once anything differs from what the form opened with (leaving then asks first)."""
        return bool(self._initial) and self._raw() != self._initial and self.launched is None

    def _parsed(self) -> tuple[NewRunSpec, dict[str, str]]:
        """The spec from the widgets, and the fields whose text is not a number of the right kind."""
        raw = self._raw()
        bad: dict[str, str] = {}
        values: dict[str, object] = {}
        for field, kind in NUMBERS.items():
            value, problem = parse_number(str(raw[field]), kind)
            if problem:
                bad[field] = problem
            else:
                values[field] = value
        spec = NewRunSpec(
            data=str(raw["data"]), layers=str(raw["layers"]).strip(), device=str(raw["device"]),
            name=str(raw["name"]).strip(), quick=bool(raw["quick"]), label_at=str(raw["label_at"]), precision=str(raw["precision"]),
            label_proposal=str(raw["label_proposal"]),
            **{f: values.get(f, getattr(self.defaults, f)) for f in NUMBERS},
        )  # fmt: skip
        return spec, bad

    def _check(self, field: str) -> str | None:
        """Check one field and show its hint or, in red, why its value is refused."""
        spec, bad = self._parsed()
        problem = bad.get(field)
        if problem is None and field in CHECKED:
            problem = spec.field_problem(field)
        self._show(field, problem)
        return problem

    def _show(self, field: str, problem: str | None) -> None:
        msg = self.query_one("#m" + fid(field)[1:], Static)
        hint = next(h for f, _, h in FIELDS if f == field)
        if problem:
            self.problems[field] = problem
        else:
            self.problems.pop(field, None)
        msg.update(problem or hint)
        msg.set_class(bool(problem), "-bad")
        msg.display = bool(problem or hint)

    def on_input_changed(self, event: Input.Changed) -> None:
        field = (event.input.id or "")[2:].replace("-", "_")
        if field in NUMBERS or field in TEXTS:
            self._check(field)
            if field == "labels":
                self._check("gamma")
                self._check("precision")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id in ("f-data", "f-precision"):
            self._check(event.select.id[2:])

    def read_form(self) -> NewRunSpec:
        """The spec from the widgets; every problem is shown next to its field. ConfigError (one
        line, the first problem) when any field is refused."""
        from bihm_app.errors import ConfigError

        spec, bad = self._parsed()
        found = {**spec.problems(), **bad}
        for field, _, _ in FIELDS:
            if field in CHECKED:
                self._show(field, found.get(field))
        if found:
            first = next(f for f, _, _ in FIELDS if f in found)
            self.query_one(f"#{fid(first)}").focus()
            label = next(lab for f, lab, _ in FIELDS if f == first)
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            subject = "" if first in ("name", "data") else f"{label}: "  # those problems name their field
            raise ConfigError(f"{subject}{found[first]}{more}")
        return spec

    # -- actions -------------------------------------------------------------------------------
    def action_launch(self) -> None:
        try:
            spec = self.read_form()
        except BihmError as exc:
            self.fail(exc, title="cannot start")
            return
        name = self.app.launch_new(spec)  # type: ignore[attr-defined]
        if name:
            self.launched = name

    def action_back(self) -> None:
        if not self.dirty:
            self.app.pop_screen()
            return
        from bihm_app.tui.screens.confirm import ConfirmScreen

        def leave(yes: bool | None) -> None:
            if yes:
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen("Discard this new run's settings?", "Discard", "Keep editing"), leave)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_launch()
        elif event.button.id == "cancel":
            self.action_back()

"""The new-run form: data, layers, K, batch, lr, epochs, device (what torch sees), name; it
launches ``bihm train`` as a child process and opens the run's live view."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Header, Input, Label, Select, Static

from bihm_app.errors import BihmError, ConfigError
from bihm_app.tui.launcher import NewRunSpec
from bihm_app.tui.screens.base import BihmScreen, text_input
from bihm_app.tui.widgets.key_footer import KeyFooter


def data_choices() -> list[str]:
    from bihm_app.data.registry import known_names

    try:
        return list(known_names())
    except BihmError:
        return ["bmnist"]


class NewRunScreen(BihmScreen):
    """Fill in the form, press Start (or ctrl+s)."""

    BINDINGS = [
        Binding("escape", "back", "Cancel", tooltip="Back without starting a run"),
        Binding("ctrl+s", "launch", "Start", tooltip="Start training with these settings"),
    ]

    def __init__(self, defaults: NewRunSpec | None = None) -> None:
        super().__init__()
        self.defaults = defaults or NewRunSpec()
        self.launched: str | None = None

    def compose(self) -> ComposeResult:
        d = self.defaults
        blink = self.app.cursor_blink  # type: ignore[attr-defined]
        yield Header(show_clock=False)
        with VerticalScroll(id="new-run-body"):
            with Grid(id="new-run-form"):
                yield Label("data")
                names = data_choices()
                yield Select([(n, n) for n in names], value=d.data if d.data in names else names[0], allow_blank=False, id="f-data")
                yield Label("layers")
                yield text_input(blink, d.layers, id="f-layers", placeholder="200,200 (bottom-up)")
                yield Label("K")
                yield text_input(blink, str(d.K), id="f-K", type="integer")
                yield Label("batch")
                yield text_input(blink, str(d.batch), id="f-batch", type="integer")
                yield Label("lr")
                yield text_input(blink, repr(d.lr), id="f-lr", type="number")
                yield Label("epochs")
                yield text_input(blink, str(d.epochs), id="f-epochs", type="integer")
                yield Label("device")
                yield Select([("auto", "auto")], value="auto", allow_blank=False, id="f-device")
                yield Label("name")
                yield text_input(blink, d.name, id="f-name", placeholder="(default: data-layers-date)")
                yield Label("labels")
                yield text_input(blink, str(d.labels), id="f-labels", type="integer", placeholder="0 = unsupervised")
                yield Label("γ")
                yield text_input(blink, repr(d.gamma), id="f-gamma", type="number")
                yield Label("y at")
                yield Select([("top (4.2)", "top"), ("bottom (4.6)", "bottom")], value=d.label_at, allow_blank=False, id="f-label-at")
                yield Label("y prop")
                yield Select([("q (4.4)", "q"), ("mixed (4.11)", "mixed"), ("sum over y", "sum")], value=d.label_proposal,
                             allow_blank=False, id="f-label-proposal")  # fmt: skip
                yield Label("")
                yield Checkbox("quick validation (1000 points, 10⁴ Z samples)", d.quick, id="f-quick")
            yield Static("", id="new-run-devices")
            with Horizontal(id="new-run-buttons"):
                yield Button("Start", id="start", variant="success")
                yield Button("Cancel", id="cancel")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.title = "new run"
        from bihm_app.tui.devices import list_devices

        self.in_thread(list_devices, done=self._devices, group="devices")

    def _devices(self, devices: list[tuple[str, str]]) -> None:
        sel = self.query_one("#f-device", Select)
        sel.set_options(devices)
        wanted = self.defaults.device
        sel.value = wanted if wanted in [v for _, v in devices] else "auto"
        self.query_one("#new-run-devices", Static).update(
            "[b]torch sees[/b]: " + " · ".join(label for label, value in devices if value != "auto")
        )

    def read_form(self) -> NewRunSpec:
        """The spec from the widgets; ConfigError (one line) for a field that is not a number."""

        def val(id_: str) -> str:
            return self.query_one(f"#{id_}", Input).value.strip()

        def number(id_: str, kind):
            text = val(id_)
            try:
                return kind(float(text)) if kind is int else kind(text)
            except ValueError:
                raise ConfigError(f"{id_[2:]}: {text!r} is not a number") from None

        return NewRunSpec(
            data=str(self.query_one("#f-data", Select).value),
            layers=val("f-layers"),
            K=number("f-K", int),
            batch=number("f-batch", int),
            lr=number("f-lr", float),
            epochs=number("f-epochs", int),
            device=str(self.query_one("#f-device", Select).value),
            name=val("f-name"),
            quick=self.query_one("#f-quick", Checkbox).value,
            labels=number("f-labels", int),
            gamma=number("f-gamma", float),
            label_at=str(self.query_one("#f-label-at", Select).value),
            label_proposal=str(self.query_one("#f-label-proposal", Select).value),
        )

    def action_launch(self) -> None:
        try:
            spec = self.read_form()
            spec.validate()
        except BihmError as exc:
            self.fail(exc, title="cannot start")
            return
        name = self.app.launch_new(spec)  # type: ignore[attr-defined]
        if name:
            self.launched = name

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_launch()
        elif event.button.id == "cancel":
            self.action_back()

"""Pictures and charts: numpy/Pillow/Rich only (no torch import; tensors are duck-typed).

Modules:
    grid      image stacks / data rows -> one float picture
              (make_grid, rows_to_images, side_by_side)
    png       pictures -> PNG / animated GIF files, written atomically; colorize for masks
    terminal  pictures -> characters (BitmapImage renderable, bitmap_lines, optional pixel_image)
    chart     metric curves -> terminal LineChart, PNG charts, sparklines
    fit_table rows of strings -> Rich tables that fit the terminal width, never cutting a value
"""

from bihm_app._exports import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "bihm_app.render.grid": ["make_grid", "side_by_side"],
        "bihm_app.render.png": ["save_png", "save_gif", "colorize"],
        "bihm_app.render.terminal": ["BitmapImage"],
        "bihm_app.render.chart": ["LineChart", "save_chart_png", "sparkline"],
        "bihm_app.render.fit_table": ["Column", "fit_table"],
    },
)

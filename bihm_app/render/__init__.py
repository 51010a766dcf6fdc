"""Pictures and charts: numpy/Pillow/Rich only (no torch import; tensors are duck-typed).

Modules:
    grid      image stacks / data rows -> one float picture
              (make_grid, rows_to_images, side_by_side)
    png       pictures -> PNG / animated GIF files, written atomically; colorize for masks
    terminal  pictures -> characters (BitmapImage renderable, bitmap_lines, optional pixel_image)
    chart     metric curves -> terminal LineChart, PNG charts, sparklines
"""

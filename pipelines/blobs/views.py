"""Views of the blob-detection pipeline: the seed tutorial's figure of detected blobs.

`blobflow -p pipelines/blobs view blobs --out blobs.png` runs `plot_blobs` (declared under `views:` in
pipeline.yaml) and saves the figure it returns.
"""

from __future__ import annotations

PANEL_INCHES = 4.0  # the seed's 2 x 3 panels in a 12 x 8 inch figure


def plot_blobs(pipe):
    """Every image with its detected blobs: one row per image, one column per parameter set, in the
    order of the Detection keys (image_id, params_id), as the seed tutorial draws them.

    Each panel shows the image in `gray_r`, a red circle (radius x 1.2, alpha 0.6, no fill) at every
    blob, and the title "{image_name}\\nParams {params_id}: {num_blobs} blobs". blob_doh returns
    (row, column, sigma), stored as (x, y, radius): x is the row, so a circle is centred at (y, x).
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    detections = pipe.query("(Detection * Image).proj(image_name, num_blobs)").fetch(
        order_by="image_id, params_id"
    )
    if not detections:
        raise ValueError("no Detection rows yet: run `blobflow populate` first")
    image_ids = sorted({d["image_id"] for d in detections})
    params_ids = sorted({d["params_id"] for d in detections})
    images = {
        row["image_id"]: row["image"] for row in pipe.query("Image & Detection").fetch("image_id", "image")
    }

    rows, columns = len(image_ids), len(params_ids)
    fig = Figure(figsize=(PANEL_INCHES * columns, PANEL_INCHES * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")  # panels without a detection (not populated yet) stay blank
    for detection in detections:
        image_id, params_id = detection["image_id"], detection["params_id"]
        ax = axes[image_ids.index(image_id), params_ids.index(params_id)]
        ax.imshow(images[image_id], cmap="gray_r")
        x, y, r = pipe.query(f"Detection.Blob & image_id = {image_id} & params_id = {params_id}").to_arrays(
            "x", "y", "radius"
        )
        circles = [Circle((yi, xi), ri * 1.2) for xi, yi, ri in zip(x, y, r)]
        ax.add_collection(
            PatchCollection(circles, facecolor="none", edgecolor="red", alpha=0.6, linewidth=1.0)
        )
        ax.set_title(
            f"{detection['image_name']}\nParams {params_id}: {detection['num_blobs']} blobs", fontsize=10
        )
    fig.tight_layout()
    return fig

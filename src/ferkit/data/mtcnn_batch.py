"""MTCNN over a batch of images of any sizes, with each image's results those of MTCNN on it alone.

facenet-pytorch's ``detect_face`` batches only images of one shape: its scale pyramid, P-Net input and
the clipping of R/O-Net crops all use the batch's one height and width. Here every image keeps its own
pyramid (scales 12/minsize * factor^k while its shorter side stays >= 12 px) and its own clipping; what
is shared is the P-Net pass: at each scale the images that reach it are resized on their own (the same
``interpolate(mode="area")`` call as facenet-pytorch's) and zero-padded onto one canvas of the largest
size. P-Net is fully convolutional, so each output cell that sees only the image's own pixels is the
cell MTCNN computes on the image alone; cells reaching into the padding are cut off. One layer needs
care: its 2x2 max-pool has ``ceil_mode``, so an image of odd height (or width) after conv1 ends in a
half window, whose max must not see the padding; conv1's output is set to -inf outside each image
before pooling, which is exactly what a half window ignores. R-Net and O-Net then run on all images'
candidates together (crops clipped to their own image), and NMS stays within each image.
"""

from __future__ import annotations

import numpy as np


def _pnet_maps(pnet, batch, sizes):
    """P-Net on a zero-padded (G, 3, H, W) batch whose image g covers ``sizes[g]`` = (h, w):
    [(reg (1, 4, h', w'), prob (1, h', w'))] per image, each cut to the output of P-Net on the image alone."""
    import torch

    x = pnet.prelu1(pnet.conv1(batch))                               # (G, 10, H-2, W-2)
    for g, (h, w) in enumerate(sizes):                               # outside image g: ignored by the max-pool
        x[g, :, h - 2:, :] = -torch.inf
        x[g, :, :, w - 2:] = -torch.inf
    x = pnet.pool1(x)
    x = pnet.prelu3(pnet.conv3(pnet.prelu2(pnet.conv2(x))))
    reg, prob = pnet.conv4_2(x), pnet.softmax4_1(pnet.conv4_1(x))
    out = []
    for g, (h, w) in enumerate(sizes):
        oh, ow = -(-(h - 2) // 2) - 4, -(-(w - 2) // 2) - 4          # ceil((h - 2) / 2) - 4
        out.append((reg[g:g + 1, :, :oh, :ow], prob[g:g + 1, 1, :oh, :ow]))
    return out


def _scales(h: int, w: int, minsize: float, factor: float) -> list[float]:
    """facenet-pytorch's scale pyramid for one image."""
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales, s = [], m
    while minl >= 12:
        scales.append(s)
        s *= factor
        minl *= factor
    return scales


def _crops(imgs, boxes, inds, sizes, side: int):
    """Each candidate box (clipped to its own image, as facenet-pytorch's ``pad``) resized to side x side."""
    import torch
    from facenet_pytorch.models.utils.detect_face import imresample

    b = boxes.trunc().int().cpu().numpy()
    hw = np.array([sizes[i] for i in inds.tolist()]).reshape(-1, 2)
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], hw[:, 1]), np.minimum(b[:, 3], hw[:, 0])
    keep, data = [], []
    for k in range(len(b)):
        if ey[k] > y[k] - 1 and ex[k] > x[k] - 1:
            img = imgs[int(inds[k])][:, :, y[k] - 1:ey[k], x[k] - 1:ex[k]]
            data.append(imresample(img, (side, side)))
            keep.append(k)
    return torch.as_tensor(keep, dtype=torch.long), (torch.cat(data) - 127.5) * 0.0078125


def detect_faces_any_size(images: list[np.ndarray], minsize: float, pnet, rnet, onet, threshold, factor: float,
                          device, max_pixels: int = 1 << 24) -> list[tuple[np.ndarray, np.ndarray]]:
    """MTCNN on RGB uint8 images (H_i, W_i, 3) of any sizes: per image (boxes (n, 5) x1 y1 x2 y2 score,
    points (n, 5, 2)), as ``detect_face`` gives for that image alone. ``max_pixels`` caps one P-Net canvas."""
    import torch
    from facenet_pytorch.models.utils.detect_face import (
        batched_nms,
        batched_nms_numpy,
        bbreg,
        fixed_batch_process,
        generateBoundingBox,
        imresample,
        rerec,
    )

    dtype = next(pnet.parameters()).dtype
    imgs = [torch.as_tensor(np.ascontiguousarray(im), device=device).permute(2, 0, 1)[None].type(dtype)
            for im in images]                                           # each (1, 3, h, w)
    sizes = [tuple(im.shape[:2]) for im in images]
    pyramids = [_scales(h, w, minsize, factor) for h, w in sizes]
    boxes_all, inds_all = [], []
    for level in range(max((len(p) for p in pyramids), default=0)):
        members = [i for i, p in enumerate(pyramids) if level < len(p)]
        resized = {i: imresample(imgs[i], (int(sizes[i][0] * pyramids[i][level] + 1),
                                           int(sizes[i][1] * pyramids[i][level] + 1))) for i in members}
        while members:                                                # canvases of at most max_pixels
            chunk, H, W = [], 0, 0
            for i in members:
                h, w = resized[i].shape[2:]
                if chunk and (len(chunk) + 1) * max(H, h) * max(W, w) > max_pixels:
                    break
                chunk.append(i)
                H, W = max(H, h), max(W, w)
            members = members[len(chunk):]
            canvas = torch.zeros((len(chunk), 3, H, W), dtype=dtype, device=device)
            for g, i in enumerate(chunk):
                h, w = resized[i].shape[2:]
                canvas[g, :, :h, :w] = (resized[i][0] - 127.5) * 0.0078125
            maps = _pnet_maps(pnet, canvas, [tuple(resized[i].shape[2:]) for i in chunk])
            for i, (reg, prob) in zip(chunk, maps, strict=True):
                bx, _ = generateBoundingBox(reg, prob, pyramids[i][level], threshold[0])
                bx = bx[batched_nms(bx[:, :4], bx[:, 4], torch.zeros(len(bx), dtype=torch.long), 0.5)]
                boxes_all.append(bx)
                inds_all.append(torch.full((len(bx),), i, dtype=torch.long))
    empty = [(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)) for _ in images]
    if not boxes_all:
        return empty
    boxes, inds = torch.cat(boxes_all), torch.cat(inds_all)
    pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds = boxes[pick], inds[pick]
    regw, regh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack([boxes[:, 0] + boxes[:, 5] * regw, boxes[:, 1] + boxes[:, 6] * regh,
                         boxes[:, 2] + boxes[:, 7] * regw, boxes[:, 3] + boxes[:, 8] * regh, boxes[:, 4]], dim=1)
    boxes = rerec(boxes)
    if len(boxes) == 0:
        return empty
    keep, data = _crops(imgs, boxes, inds, sizes, 24)                 # second stage: R-Net
    boxes, inds = boxes[keep], inds[keep]
    reg, prob = fixed_batch_process(data, rnet)
    ipass = prob[:, 1] > threshold[1]
    boxes = torch.cat((boxes[ipass, :4], prob[ipass, 1:2]), dim=1)
    inds, mv = inds[ipass], reg[ipass]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
    boxes, inds, mv = boxes[pick], inds[pick], mv[pick]
    boxes = rerec(bbreg(boxes, mv))
    if len(boxes) == 0:
        return empty
    keep, data = _crops(imgs, boxes, inds, sizes, 48)                 # third stage: O-Net
    boxes, inds = boxes[keep], inds[keep]
    reg, pts, prob = fixed_batch_process(data, onet)
    ipass = prob[:, 1] > threshold[2]
    boxes = torch.cat((boxes[ipass, :4], prob[ipass, 1:2]), dim=1)
    inds, mv, pts = inds[ipass], reg[ipass], pts[ipass]
    w_i, h_i = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    points = torch.stack((w_i[:, None] * pts[:, :5] + boxes[:, 0:1] - 1,
                          h_i[:, None] * pts[:, 5:10] + boxes[:, 1:2] - 1), dim=2)   # (n, 5, 2)
    boxes = bbreg(boxes, mv)
    out = []
    for i in range(len(images)):                                      # "Min" NMS within each image
        sel = torch.nonzero(inds == i).flatten()
        if len(sel) == 0:
            out.append(empty[i])
            continue
        pick = sel[batched_nms_numpy(boxes[sel, :4], boxes[sel, 4], inds[sel], 0.7, "Min")]
        out.append((boxes[pick].cpu().numpy().reshape(-1, 5), points[pick].cpu().numpy().reshape(-1, 5, 2)))
    return out

"""A CPU stand-in for a GPU run: it fails where a CUDA run would fail on tensors of two devices meeting.

On a CPU every tensor is on the configured device, so a stray ``.cpu()`` or a tensor made without ``device=``
goes unnoticed until the first GPU run. :class:`HostDeviceGuard` (a ``TorchFunctionMode``) tells two kinds of
CPU tensor apart, as a CUDA run would have them:

- *host* tensors, which a CUDA run would leave on the CPU: made by a factory (``torch.zeros``, ``torch.tensor``,
  ``torch.arange``, ...) without ``device=`` or with ``device="cpu"``, by ``torch.from_numpy``, by ``.cpu()``
  or ``.to("cpu")``; and what is computed from host tensors alone;
- *device* tensors: everything else, i.e. what ``.to(device)`` / ``device=`` made with a ``torch.device`` (it
  stands for the configured one, unless it is the ``.device`` of a host tensor), what was made before the
  guard, and what is computed from any device tensor.

An op that gets a device tensor and a host tensor of one or more dimensions raises :class:`DeviceMismatch`
(CUDA accepts 0-dimensional CPU tensors beside its own, as an optimiser's step counter, so they pass), and so
does ``.numpy()`` of a device tensor. ``copy_`` (``load_state_dict``) and ``.to`` cross devices legally.
A parameter moved by ``Module.to(device)`` becomes a device tensor (its Python object stays the same).
What a ``DataLoader`` makes (dataset items, transforms, collation) is host, as it is in a CUDA run, whatever
``device=`` its code names. Limit: ``torch.device("cpu")`` written out counts as the configured device.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors
from torch.utils._pytree import tree_flatten
from torch.utils.data.dataloader import _BaseDataLoaderIter

_HOST = "_ferkit_host_tensor"


class DeviceMismatch(AssertionError):
    """A host tensor met a device tensor: on a GPU this op would fail (or move data it should not)."""


def is_host(t: torch.Tensor) -> bool:
    return bool(getattr(t, _HOST, False))


def _tag(out, host: bool):
    for t in tree_flatten(out)[0]:
        if isinstance(t, torch.Tensor):
            try:
                setattr(t, _HOST, host)
            except (AttributeError, RuntimeError):    # a tensor type that takes no attributes (rare)
                pass
    return out


def _describe(t: torch.Tensor) -> str:
    return f"{'host' if is_host(t) else 'device'} {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


class HostDeviceGuard(TorchFunctionMode):
    """``with HostDeviceGuard():`` around CPU training or prediction; see the module docstring."""

    def __init__(self):
        super().__init__()
        self.constructors = _device_constructors()
        self.checked = 0                      # ops checked (a test can see the guard was live)
        self.host_zone = 0                    # > 0 while a DataLoader makes a batch: all of it is host
        self.host_devices: dict[int, torch.device] = {}   # the .device objects read off host tensors, by id

    def __enter__(self):
        # torch.from_numpy and nn.Parameter() are no torch functions: wrapped while the guard is on
        self._from_numpy = torch.from_numpy

        def from_numpy(array):
            return _tag(self._from_numpy(array), True)

        torch.from_numpy = from_numpy
        self._parameter_new = torch.nn.Parameter.__new__   # a parameter takes its data's side

        def parameter_new(cls, data=None, requires_grad=True):
            param = self._parameter_new(cls, data, requires_grad)
            return _tag(param, data is None or is_host(data))

        torch.nn.Parameter.__new__ = staticmethod(parameter_new)
        self._next = _BaseDataLoaderIter.__next__     # data loading runs on the host in a CUDA run

        def next_batch(it):
            self.host_zone += 1
            try:
                return _tag(self._next(it), True)
            finally:
                self.host_zone -= 1

        _BaseDataLoaderIter.__next__ = next_batch
        return super().__enter__()

    def __exit__(self, *exc):
        torch.from_numpy = self._from_numpy
        torch.nn.Parameter.__new__ = staticmethod(self._parameter_new)
        _BaseDataLoaderIter.__next__ = self._next
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.host_zone:
            return _tag(func(*args, **kwargs), True)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        name = _name(func)
        if func in self.constructors and not tensors:
            return _tag(func(*args, **kwargs), self._names_host(kwargs.get("device")))
        if name.endswith(".cpu") or name == "cpu":
            out = func(*args, **kwargs)
            return _tag(out.view_as(out) if out is args[0] else out, True)
        if name.endswith(".to") or name == "to":
            return self._to(func, args, kwargs)
        if name.endswith(".numpy") or name.endswith("__array__"):
            if tensors and not is_host(tensors[0]):
                raise DeviceMismatch(f"{name}() of a device tensor {_describe(tensors[0])}: on a GPU this fails; "
                                     "call .cpu() first")
            return func(*args, **kwargs)
        if name.endswith("__set__"):          # t.data = value: t takes the value's side
            out = func(*args, **kwargs)
            if len(args) == 2 and isinstance(args[1], torch.Tensor):
                _tag(args[0], is_host(args[1]))
            return out
        if not name.endswith("copy_"):
            self._check(name, tensors)
        out = func(*args, **kwargs)
        if isinstance(out, torch.device):     # t.device of a host tensor names the host when passed on
            if tensors and is_host(tensors[0]):
                self.host_devices[id(out)] = out
        elif out is not None and not name.endswith("copy_"):
            _tag(out, all(is_host(t) for t in tensors))
        return out

    def _names_host(self, device) -> bool:
        """Whether a ``device=`` / ``.to()`` target is the host: none given (for a factory), the string "cpu"
        (code names the host so; the configured device comes as a ``torch.device``), or the ``.device`` of a
        host tensor."""
        if device is None or (isinstance(device, str) and device.startswith("cpu")):
            return True
        return self.host_devices.get(id(device)) is device

    def _check(self, name: str, tensors: list[torch.Tensor]) -> None:
        self.checked += 1
        device = [t for t in tensors if not is_host(t)]
        host = [t for t in tensors if is_host(t) and t.dim() > 0]
        if device and host:
            raise DeviceMismatch(f"{name}: a host tensor ({_describe(host[0])}, made without device= or by .cpu()) "
                                 f"meets a device tensor ({_describe(device[0])}); on a GPU this op fails")

    def _to(self, func, args, kwargs):
        """``t.to(...)``: an explicit target decides the side (a tensor's, or a device's); a dtype alone keeps it."""
        src = args[0]
        rest = args[1:]
        target = next((a for a in (*rest, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if target is not None:
            explicit, host = True, is_host(target)
        else:
            device = kwargs.get("device", next((a for a in rest if isinstance(a, (str, torch.device, int))), None))
            explicit, host = device is not None, self._names_host(device)
        out = func(*args, **kwargs)
        if not explicit:
            return _tag(out, is_host(src)) if out is not src else out
        if isinstance(src, torch.nn.Parameter) and out is src:
            return _tag(out, host)            # Module.to(device) moves a parameter's data in place
        return _tag(out.view_as(out) if out is src else out, host)

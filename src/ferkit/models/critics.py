"""Statistics networks (MI critics) and the adversarial discriminator of DICE-FER.

Designs follow Sanchez et al. (ECCV 2020; MehdiZouitine/... ``statistics_network.py``, ``gan.py``), whose
loss coefficients DICE-FER keeps (METHODS.md A.1.2):
  global U(F, z):  flatten(F) (+) z -> Linear(., H) -> ReLU -> Linear(H, H) -> ReLU -> Linear(H, 1)
  local  U(F, z):  tile z over h x w, concat with F -> Conv1x1(C+d, H) -> ReLU -> Conv1x1(H, H) -> ReLU
                   -> Conv1x1(H, 1): one score per location
  discriminator:   Linear(d_E+d_I, 1000) -> ReLU -> Linear(1000, 200) -> ReLU -> Linear(200, 1) (a logit)

The first layer on a concatenation is written as the sum of two maps, W [F; z] = W_F F + W_z z, which is
the same function; it lets joint, marginal (permuted z) and all-pairs scores share the costly W_F F.
"""

from __future__ import annotations

import torch
from torch import nn


class GlobalStatistics(nn.Module):
    """Global statistics network on (flattened feature map, code); scores (B,)."""

    def __init__(self, map_channels: int, map_hw: tuple[int, int], code_dim: int, hidden: int = 512):
        super().__init__()
        self.map_in = nn.Linear(map_channels * map_hw[0] * map_hw[1], hidden)   # W_F (+ bias)
        self.code_in = nn.Linear(code_dim, hidden, bias=False)                 # W_z
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def _project(self, fmap: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.map_in(fmap.flatten(1)), self.code_in(code)                # (B, H), (B, H)

    def forward(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return self.head(a + b).squeeze(-1)                                     # (B,)

    def joint_and_marginal(self, fmap: torch.Tensor, code: torch.Tensor,
                           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._project(fmap, code)                                        # (B, H) each
        both = self.head(torch.cat([a + b, a + b[perm]])).squeeze(-1)           # (2B,)
        return both.chunk(2)                                                    # (B,), (B,)

    def pairwise(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return self.head(a[:, None] + b[None, :]).squeeze(-1)                   # (B, B)


class LocalStatistics(nn.Module):
    """Local (1x1-conv) statistics network; one score per feature-map location, (B, h, w)."""

    def __init__(self, map_channels: int, code_dim: int, hidden: int = 512):
        super().__init__()
        self.map_in = nn.Conv2d(map_channels, hidden, kernel_size=1)           # W_F (+ bias)
        self.code_in = nn.Linear(code_dim, hidden, bias=False)                 # W_z, tiled over locations
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))

    def _project(self, fmap: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.map_in(fmap), self.code_in(code)[:, :, None, None]          # (B, H, h, w), (B, H, 1, 1)

    def forward(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return self.head(a + b).squeeze(1)                                      # (B, h, w)

    def joint_and_marginal(self, fmap: torch.Tensor, code: torch.Tensor,
                           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._project(fmap, code)
        both = self.head(torch.cat([a + b, a + b[perm]])).squeeze(1)            # (2B, h, w)
        return both.chunk(2)                                                    # (B, h, w) each

    def pairwise(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)                                        # (B, H, h, w), (B, H, 1, 1)
        n, hid, h, w = a.shape
        grid = (a[:, None] + b[None, :]).reshape(n * n, hid, h, w)              # (B*B, H, h, w)
        return self.head(grid).reshape(n, n, h, w)                              # (B, B, h, w)


class SeparableGlobalStatistics(nn.Module):
    """[INFERRED] separable global critic U(F, z) = <g(flatten F), h(z)> / sqrt(k); scores (B,).

    The concatenation critic must learn the interaction between F and z through its hidden ReLUs; a
    separable one scores their agreement directly (the form of CPC/DIM's encoder-and-critic pairs), so a
    weak dependence between an image's map and its partner's code gives a gradient from the first steps.
    """

    def __init__(self, map_channels: int, map_hw: tuple[int, int], code_dim: int, hidden: int = 512):
        super().__init__()
        self.k = max(hidden // 4, 8)
        self.map_net = nn.Sequential(nn.Linear(map_channels * map_hw[0] * map_hw[1], hidden), nn.ReLU(),
                                     nn.Linear(hidden, self.k))
        self.code_net = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, self.k))

    def _project(self, fmap: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.map_net(fmap.flatten(1)), self.code_net(code) / self.k ** 0.5   # (B, k), (B, k)

    def forward(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return (a * b).sum(-1)                                                  # (B,)

    def joint_and_marginal(self, fmap: torch.Tensor, code: torch.Tensor,
                           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._project(fmap, code)
        return (a * b).sum(-1), (a * b[perm]).sum(-1)                           # (B,), (B,)

    def pairwise(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return a @ b.T                                                          # (B, B)


class SeparableLocalStatistics(nn.Module):
    """[INFERRED] separable local critic: <g(F)_ij, h(z)> / sqrt(k) at every location, (B, h, w)."""

    def __init__(self, map_channels: int, code_dim: int, hidden: int = 512):
        super().__init__()
        self.k = max(hidden // 4, 8)
        self.map_net = nn.Sequential(nn.Conv2d(map_channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, self.k, 1))
        self.code_net = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, self.k))

    def _project(self, fmap: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.map_net(fmap), self.code_net(code) / self.k ** 0.5           # (B, k, h, w), (B, k)

    def forward(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return torch.einsum("bkij,bk->bij", a, b)                               # (B, h, w)

    def joint_and_marginal(self, fmap: torch.Tensor, code: torch.Tensor,
                           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self._project(fmap, code)
        return torch.einsum("bkij,bk->bij", a, b), torch.einsum("bkij,bk->bij", a, b[perm])

    def pairwise(self, fmap: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        a, b = self._project(fmap, code)
        return torch.einsum("akij,bk->abij", a, b)                              # (B, B, h, w)


class VectorStatistics(nn.Module):
    """MLP critic on two vectors, U(x, z) = MLP([x; z]) (used for the modified MIG and Gaussian tests)."""

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 512):
        super().__init__()
        self.x_in = nn.Linear(x_dim, hidden)
        self.z_in = nn.Linear(z_dim, hidden, bias=False)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.x_in(x) + self.z_in(z)).squeeze(-1)              # (B,)

    def joint_and_marginal(self, x: torch.Tensor, z: torch.Tensor,
                           perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.x_in(x), self.z_in(z)
        both = self.head(torch.cat([a + b, a + b[perm]])).squeeze(-1)           # (2B,)
        return both.chunk(2)

    def pairwise(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        a, b = self.x_in(x), self.z_in(z)
        return self.head(a[:, None] + b[None, :]).squeeze(-1)                   # (B, B)


class Discriminator(nn.Module):
    """Three FC layers on the concatenated (E, I); returns a logit (B,). Joint pairs are 'fake' (0)."""

    def __init__(self, in_dim: int = 128, hidden: tuple[int, int] = (1000, 200)):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], 1))

    def forward(self, e: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([e, i], dim=1)).squeeze(-1)                  # (B,)

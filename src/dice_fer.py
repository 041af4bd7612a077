"""`from dice_fer import DICEFER` works as in the DICE-FER seed README."""

from ferkit.api.dicefer import DICEFER

__all__ = ["DICEFER"]

"""Model objects: data without behaviour. Imports neither simpy, matplotlib nor pandas."""

from sim.model.acquisition import COHORT_CHANNEL, Acquisition, Arrivals, Channel, Cohort
from sim.model.builtin import BUILTIN_JOURNEYS, builtin_journey, five_stage, six_stage
from sim.model.intervention import (
    ArrivalRateFactor,
    CapacityChange,
    ChurnFactor,
    Cost,
    DwellFactor,
    Intervention,
    NewTransition,
    OddsRatio,
    OrderValueFactor,
    OutcomeOddsRatio,
    ReferralRateFactor,
    RepeatFactor,
    SatisfactionChange,
)
from sim.model.journey import Journey, Stage
from sim.model.logit import apply_log_odds, transition_matrices
from sim.model.market import (
    MARKET_CHANNEL,
    REFERRAL_CHANNEL,
    WORD_OF_MOUTH_CHANNEL,
    Market,
    NegativeWordOfMouth,
    Referrals,
    WordOfMouth,
)
from sim.model.persona import Effect, Persona
from sim.model.resource import CapacityFrom, Resource
from sim.model.satisfaction import Outcome, Satisfaction, SatisfactionEffect
from sim.model.scenario import Scenario

__all__ = [
    "BUILTIN_JOURNEYS",
    "COHORT_CHANNEL",
    "MARKET_CHANNEL",
    "REFERRAL_CHANNEL",
    "WORD_OF_MOUTH_CHANNEL",
    "Acquisition",
    "ArrivalRateFactor",
    "Arrivals",
    "CapacityChange",
    "CapacityFrom",
    "Channel",
    "ChurnFactor",
    "Cohort",
    "Cost",
    "DwellFactor",
    "Effect",
    "Intervention",
    "Journey",
    "Market",
    "NegativeWordOfMouth",
    "NewTransition",
    "OddsRatio",
    "OrderValueFactor",
    "Outcome",
    "OutcomeOddsRatio",
    "Persona",
    "ReferralRateFactor",
    "Referrals",
    "RepeatFactor",
    "Resource",
    "Satisfaction",
    "SatisfactionChange",
    "SatisfactionEffect",
    "Scenario",
    "Stage",
    "WordOfMouth",
    "apply_log_odds",
    "builtin_journey",
    "five_stage",
    "six_stage",
    "transition_matrices",
]

"""Ready-made interventions (discount, ad campaign, retargeting, loyalty, referral, onboarding).

The presets live with the model (:mod:`sim.model.presets`); this module is their public home,
so ``sim.interventions.discount(...)`` and ``from sim.interventions import discount`` work.
"""

from sim.model.presets import (
    PRESETS,
    ad_campaign,
    discount,
    loyalty_program,
    onboarding,
    preset,
    referral_program,
    retargeting,
)

__all__ = [
    "PRESETS",
    "ad_campaign",
    "discount",
    "loyalty_program",
    "onboarding",
    "preset",
    "referral_program",
    "retargeting",
]

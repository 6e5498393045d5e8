"""DoWhy's normalised inverse-propensity weighting estimator, as the refuters run it, made cheap (issue 17 item 2).

Each refuter run refits DoWhy's estimator on altered data (a permuted treatment, an extra random column, an 80%
subset): ten fits for three simulations of three refuters. Two things DoWhy does on every fit dominated their time
on a 20,000-episode council: one-hot encoding the characteristics through scikit-learn's OneHotEncoder (whose
checks cost more than the encoding) and computing all twelve weighting schemes with pandas arithmetic to use one.
``weighting_estimator`` is DoWhy's own PropensityScoreWeightingEstimator with those two steps done by numpy, the
same arithmetic in the same order: the same encoded columns and the same estimates (tests/test_causal.py compares
both with DoWhy's own on the same data). The propensity model, the refuters and their random draws stay DoWhy's.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd


def weighting_estimator(identified_estimand, propensity_model, *, min_ps_score: float, max_ps_score: float):
    """DoWhy's weighting estimator (normalised weights, ``ips_normalized_weight``) with the cheaper encoding and
    estimate; its copies (DoWhy's get_new_estimator_object, one per refuter run) are of the same class."""
    return _estimator_class()(
        identified_estimand,
        weighting_scheme="ips_normalized_weight",
        propensity_score_model=propensity_model,
        min_ps_score=min_ps_score,
        max_ps_score=max_ps_score,
        need_conditional_estimates=False,
    )


@functools.cache
def _estimator_class():
    """The subclass, made on first use (importing DoWhy is slow and only the intervention analysis needs it)."""
    from dowhy.causal_estimator import CausalEstimate
    from dowhy.causal_estimators.propensity_score_weighting_estimator import PropensityScoreWeightingEstimator

    class NormalisedWeighting(PropensityScoreWeightingEstimator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._encoders = CategoryEncoders()

        def get_new_estimator_object(self, identified_estimand, *args, **kwargs):
            """DoWhy's copy for a refuter run, without deep-copying the fitted data it refits anyway."""
            fitted, self._observed_common_causes = self._observed_common_causes, None
            try:
                return super().get_new_estimator_object(identified_estimand, *args, **kwargs)
            finally:
                self._observed_common_causes = fitted

        def estimate_effect(self, data, treatment_value=1, control_value=0, target_units=None, **kwargs):
            scheme = {"ate": "", "att": "t", "atc": "c"}.get(target_units) if isinstance(target_units, str) else None
            if self.weighting_scheme != "ips_normalized_weight" or scheme is None:
                return super().estimate_effect(data, treatment_value, control_value, target_units, **kwargs)
            self._target_units, self._treatment_value, self._control_value = (
                target_units,
                treatment_value,
                control_value,
            )
            if self.propensity_score_column not in data:
                self.estimate_propensity_score_column(data)
            ps = np.maximum(self.min_ps_score, np.minimum(self.max_ps_score, data[self.propensity_score_column]))
            data[self.propensity_score_column] = ps
            t = data[self._target_estimand.treatment_variable[0]]
            y = data[self._target_estimand.outcome_variable[0]]
            w = normalised_weights(t.to_numpy(), ps.to_numpy(), scheme)
            d_y, dbar_y = w * t.to_numpy() * y.to_numpy(), w * (1 - t.to_numpy()) * y.to_numpy()
            est = pd.Series(d_y).sum() / np.sum(t.to_numpy() * w) - pd.Series(dbar_y).sum() / np.sum(
                (1 - t.to_numpy()) * w
            )
            estimate = CausalEstimate(
                data=data,
                treatment_name=self._target_estimand.treatment_variable,
                outcome_name=self._target_estimand.outcome_variable,
                estimate=est,
                control_value=control_value,
                treatment_value=treatment_value,
                target_estimand=self._target_estimand,
                realized_estimand_expr=self.symbolic_estimator,
                propensity_scores=data[self.propensity_score_column],
            )
            estimate.add_estimator(self)
            return estimate

    return NormalisedWeighting


def normalised_weights(t: np.ndarray, ps: np.ndarray, scheme: str) -> np.ndarray:
    """DoWhy's normalised weights (``ips``/``tips``/``cips_normalized_weight`` for the ATE/ATT/ATC) with its
    arithmetic: the same operations in the same order, its sums taken one term after another as Python's sum()."""
    if scheme == "":
        return t / ps / sum((t / ps).tolist()) + (1 - t) / (1 - ps) / sum(((1 - t) / (1 - ps)).tolist())
    if scheme == "t":
        return t / sum(t.tolist()) + (1 - t) * ps / (1 - ps) / sum(((1 - t) / (1 - ps) * ps).tolist())
    return t * (1 - ps) / ps / sum((t / ps * (1 - ps)).tolist()) + (1 - t) / sum((1 - t).tolist())


class CategoryEncoders:
    """DoWhy's one-hot encoding of the characteristics (dowhy.utils.encoding.Encoders: scikit-learn's
    OneHotEncoder, first category dropped) done with pandas' Categorical codes: the same columns, names and values in a fraction
    of the time. DoWhy encodes the data again for every refuter fit, and scikit-learn's checks on each call
    were a third of the refuters' time (issue 17 item 2). Anything but text columns of Python strings without
    missing values goes to DoWhy's own encoder."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._encoders: dict = {}

    def encode(self, data: pd.DataFrame, encoder_name: str):
        text = data.select_dtypes(include=["object", "string", "category"])
        known = self._encoders.get(encoder_name, {})
        if len(text.columns) == 0 or not isinstance(known, dict) or not _plain_text(text):
            from dowhy.utils.encoding import one_hot_encode

            encoded, self._encoders[encoder_name] = one_hot_encode(data, drop_first=True, encoder=known or None)
            return encoded
        levels, blocks, names = dict(known), [], []
        for c in text.columns:
            codes = pd.Categorical(text[c], categories=levels.get(c))  # new categories: sorted, as scikit-learn's
            if (codes.codes < 0).any():
                raise ValueError(f"Found unknown categories in column {c} during transform")
            levels[c] = codes.categories
            blocks.append((codes.codes[:, None] == np.arange(1, len(codes.categories))[None, :]).astype(float))
            names += [f"{c}_{v}" for v in codes.categories[1:]]
        self._encoders[encoder_name] = levels
        keep = data[data.columns.difference(text.columns)].reset_index(drop=True)
        return pd.concat([keep, pd.DataFrame(np.hstack(blocks), columns=names)], axis=1)


def _plain_text(text: pd.DataFrame) -> bool:
    """Every column holds Python strings only, no missing values (what CategoryEncoders encodes itself)."""
    return all(text[c].dtype == object and pd.api.types.infer_dtype(text[c], skipna=False) == "string" for c in text)

"""scikit-learn's own conformance suite over our nine estimators: every check it yields must pass.

The instances keep every default except the number of trees, lowered to keep the suite fast. The
estimators declare what they refuse (sparse input; NaN for all but the histogram boosters) through
their tags, and the checks then expect a clear error."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from apps.boosting import model as ours

ESTIMATORS = [
    ours.DecisionTreeClassifier(),
    ours.DecisionTreeRegressor(),
    ours.RandomForestClassifier(n_estimators=5),
    ours.RandomForestRegressor(n_estimators=5),
    ours.AdaBoostClassifier(n_estimators=10),
    ours.GradientBoostingClassifier(n_estimators=10),
    ours.GradientBoostingRegressor(n_estimators=10),
    ours.HistBoostingClassifier(n_estimators=10),
    ours.HistBoostingRegressor(n_estimators=10),
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)

import math

from core.stats import mean_se


def test_mean_and_its_standard_error_on_hand_cases():
    m, se = mean_se([0.0, 1.0, 0.0, 1.0])
    assert m == 0.5 and math.isclose(se, math.sqrt((4 * 0.25 / 3) / 4))
    one = mean_se([0.7])
    assert one[0] == 0.7 and math.isnan(one[1])
    assert all(math.isnan(x) for x in mean_se([]))

#include <gtest/gtest.h>

#include "core/error.h"
#include "quant/quant_spec.h"

namespace amlq {
namespace {

TEST(QuantSpec, LabelsRoundTrip) {
  for (const char* label : {"4b-g128", "3b-row", "25%4b-g64+75%3b-g128", "2b-g32-sym", "8b-g64-noact",
                            "4b-g128-static", "12.5%8b-g32+87.5%2b-row-sym-noact"}) {
    const QuantSpec spec = QuantSpec::parse(label);
    EXPECT_EQ(spec.label(), label);
    EXPECT_EQ(QuantSpec::parse(spec.label()), spec);
  }
}

TEST(QuantSpec, ParseFields) {
  const QuantSpec spec = QuantSpec::parse("25%4b-g64+75%3b-row-sym-noact");
  ASSERT_EQ(spec.parts.size(), 2u);
  EXPECT_EQ(spec.parts[0], (QuantPart{4, 64, 0.25}));
  EXPECT_EQ(spec.parts[1], (QuantPart{3, 0, 0.75}));
  EXPECT_TRUE(spec.symmetric);
  EXPECT_FALSE(spec.act_order);
  EXPECT_FALSE(spec.static_groups);
  EXPECT_EQ(QuantSpec{}.label(), "4b-g128");
}

TEST(QuantSpec, MalformedLabelsAreUsageErrors) {
  for (const char* label : {"", "4", "4b", "4b-g", "4b-gx", "xb-g128", "4b-g-1", "50%4b-g128+40%3b-g128",
                            "4b-g128+3b-g128", "4b-g128-bogus", "0%4b-g128+100%3b-g128"}) {
    try {
      QuantSpec::parse(label);
      ADD_FAILURE() << "accepted '" << label << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Usage) << label;
    }
  }
}

TEST(QuantSpec, PartColumnsAreGroupAligned) {
  const QuantSpec spec = QuantSpec::parse("25%4b-g64+75%3b-g128");
  EXPECT_EQ(spec.part_columns(4096), (std::vector<std::pair<int, int>>{{0, 1024}, {1024, 4096}}));
  // 25% of 11008 is 2752 = 21.5 x 128: the boundary moves to a multiple of 128.
  const auto r = spec.part_columns(11008);
  EXPECT_EQ(r[0].second % 128, 0);
  EXPECT_EQ(r[1].second, 11008);
  EXPECT_NO_THROW(spec.validate(4096, 11008, "mlp.down_proj"));
}

TEST(QuantSpec, ValidateRejectsGroupThatDoesNotDivide) {
  const QuantSpec spec = QuantSpec::parse("4b-g128");
  try {
    spec.validate(32, 64, "layers.0.self_attn.q_proj");
    FAIL() << "g128 on 64 columns accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layers.0.self_attn.q_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[32 x 64]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("group size 128"), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(QuantSpec::parse("4b-g32").validate(32, 64, "x"));
  EXPECT_NO_THROW(QuantSpec::parse("4b-row").validate(3, 37, "x"));
  EXPECT_NO_THROW(QuantSpec::parse("4b-g48").validate(3, 96, "x"));  // any divisor is fine
}

TEST(QuantSpec, ValidateRejectsBadBitsFractionsAndStaticMix) {
  QuantSpec spec;
  spec.parts[0].bits = 9;
  EXPECT_THROW(spec.validate(8, 128, "x"), Error);
  spec.parts[0].bits = 1;
  EXPECT_THROW(spec.validate(8, 128, "x"), Error);
  spec = QuantSpec::parse("50%4b-g32+50%3b-g32");
  spec.parts[1].fraction = 0.4;
  EXPECT_THROW(spec.validate(8, 128, "x"), Error);
  spec = QuantSpec::parse("50%4b-g32+50%3b-g32-static");
  EXPECT_THROW(spec.validate(8, 128, "x"), Error);
  EXPECT_THROW(QuantSpec::parse("4b-g32").validate(0, 128, "x"), Error);
}

}  // namespace
}  // namespace amlq

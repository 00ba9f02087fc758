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
  // 25% of 11008 is 2752 = 43 x 64: the first part's group fits exactly.
  EXPECT_EQ(spec.part_columns(11008), (std::vector<std::pair<int, int>>{{0, 2752}, {2752, 11008}}));
  // 25% of 172 is 43: rounded to one group of 64; the last part, 108 columns,
  // ends with a shorter group (128 would not fit: see ValidateRejectsGroupWiderThanPart).
  EXPECT_EQ(QuantSpec::parse("25%4b-g64+75%3b-g32").part_columns(172),
            (std::vector<std::pair<int, int>>{{0, 64}, {64, 172}}));
  // Each boundary is a whole number of groups of the part it closes.
  const auto three = QuantSpec::parse("10%8b-g32+30%4b-g64+60%3b-g128").part_columns(1000);
  EXPECT_EQ(three, (std::vector<std::pair<int, int>>{{0, 96}, {96, 416}, {416, 1000}}));
  EXPECT_NO_THROW(spec.validate(4096, 11008, "mlp.down_proj"));
}

TEST(QuantSpec, PartColumnsNeverEmpty) {
  // Alignment would swallow the last part: plain rounding, then at least one column each.
  EXPECT_EQ(QuantSpec::parse("98%3b-g16+2%4b-row").part_columns(32),
            (std::vector<std::pair<int, int>>{{0, 31}, {31, 32}}));
  EXPECT_EQ(QuantSpec::parse("99%3b-row+1%4b-row").part_columns(10),
            (std::vector<std::pair<int, int>>{{0, 9}, {9, 10}}));
  EXPECT_EQ(QuantSpec::parse("1%3b-row+99%4b-row").part_columns(10),
            (std::vector<std::pair<int, int>>{{0, 1}, {1, 10}}));
  const auto four = QuantSpec::parse("97%3b-g32+1%4b-row+1%5b-row+1%6b-row").part_columns(3);
  EXPECT_EQ(four.size(), 4u);
  for (size_t p = 0; p + 1 < four.size(); ++p) EXPECT_EQ(four[p].second, four[p + 1].first);
  EXPECT_EQ(four.back().second, 3);  // 3 columns for 4 parts: validate reports the empty one
  for (int cols : {1, 2, 5, 37, 172, 4096})
    for (const char* label : {"25%4b-g64+75%3b-g128", "50%3b-g32+50%4b-row", "10%8b-g32+30%4b-g64+60%3b-g128"}) {
      const auto r = QuantSpec::parse(label).part_columns(cols);
      EXPECT_EQ(r.front().first, 0);
      EXPECT_EQ(r.back().second, cols);
      for (size_t p = 0; p < r.size(); ++p) {
        if (cols >= static_cast<int>(r.size())) EXPECT_GT(r[p].second, r[p].first) << label << " " << cols;
        if (p) EXPECT_EQ(r[p].first, r[p - 1].second);
      }
    }
  try {
    QuantSpec::parse("50%3b-row+50%4b-row").validate(4, 1, "tiny");
    FAIL() << "two parts on one column accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("part 2 gets no columns"), std::string::npos) << e.what();
  }
}

TEST(QuantSpec, ValidateRejectsGroupWiderThanPart) {
  const QuantSpec spec = QuantSpec::parse("4b-g128");
  try {
    spec.validate(32, 64, "layers.0.self_attn.q_proj");
    FAIL() << "g128 on 64 columns accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layers.0.self_attn.q_proj"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[32 x 64]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4b-g128"), std::string::npos) << msg;
    EXPECT_NE(msg.find("group size 128 exceeds the 64 columns of part 1"), std::string::npos) << msg;
  }
  try {
    // The second part gets 172 - 64 = 108 columns, fewer than its group.
    QuantSpec::parse("25%4b-g64+75%3b-g128").validate(64, 172, "layers.0.mlp.down_proj");
    FAIL() << "g128 on a 108-column part accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_NE(std::string(e.what()).find("group size 128 exceeds the 108 columns of part 2"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(QuantSpec::parse("4b-g64-static").validate(8, 63, "x"), Error);
}

TEST(QuantSpec, ValidateAcceptsShortLastGroups) {
  // The real model's mlp.down_proj has 172 input columns.
  for (const char* label : {"4b-g32", "3b-g64", "2b-g128", "4b-g32-static", "25%4b-g64+75%3b-g32", "3b-g172"})
    EXPECT_NO_THROW(QuantSpec::parse(label).validate(64, 172, "layers.0.mlp.down_proj")) << label;
  EXPECT_NO_THROW(QuantSpec::parse("4b-g32").validate(32, 64, "x"));
  EXPECT_NO_THROW(QuantSpec::parse("4b-row").validate(3, 37, "x"));
  EXPECT_NO_THROW(QuantSpec::parse("4b-g16").validate(3, 37, "x"));
  EXPECT_NO_THROW(QuantSpec::parse("4b-g48").validate(3, 96, "x"));
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

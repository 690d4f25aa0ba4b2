// The dashboard compiled into the binary (cmake/embed_assets.cmake): every file of sink/web/
// is found under its path with its bytes and content type; anything else is not.
#include <topicflow/web_assets.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#ifndef TOPICFLOW_WEB_DIR
#error "define TOPICFLOW_WEB_DIR to sink/web"
#endif

namespace {

std::string file_text(const std::string& name) {
  std::ifstream in(std::string(TOPICFLOW_WEB_DIR) + "/" + name, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(WebAssets, RootIsTheIndexPage) {
  const auto* root = topicflow::web::find_asset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root->path, "/index.html");
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_EQ(root->body, file_text("index.html"));
}

TEST(WebAssets, EveryFileHasItsBytesAndType) {
  ASSERT_GE(topicflow::web::assets().size(), 3U);
  for (const auto& asset : topicflow::web::assets()) {
    EXPECT_EQ(asset.body, file_text(std::string(asset.path.substr(1)))) << asset.path;
    EXPECT_EQ(topicflow::web::find_asset(asset.path), &asset) << asset.path;
  }
  EXPECT_EQ(topicflow::web::find_asset("/app.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(topicflow::web::find_asset("/style.css")->content_type, "text/css; charset=utf-8");
}

TEST(WebAssets, UnknownPathsAreNotFound) {
  for (const char* path : {"/nope.js", "/../CMakeLists.txt", "/v1/jobs", "index.html", "/APP.JS"}) {
    EXPECT_EQ(topicflow::web::find_asset(path), nullptr) << path;
  }
}

}  // namespace
